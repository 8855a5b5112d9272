"""Snapshot suites: a week's hidden suite, run once on the instructor's solution, recorded as data.

A bundle that students can read (Classroom 50 publishes its autograder tarballs) must not carry the
reference implementation, the solution or the hidden suite's source. It can carry what the suite *did*:
``record`` grades the instructor's notebook with the live suite (hypothesis derandomized, so the inputs
are the ones live grading draws) while hooks on the grader side of the sandbox write down, per test:

* every call into student code: target, method, arguments (tensors copied at call time), per-call time
  limit, and what came back (a value, an object handle, or which exception type was raised); an argument
  that is an earlier reply (``decode(encode(text))``) or an object built earlier is recorded as a
  reference to that reply, so replay feeds the student's own values back in;
* every ``assert_close`` / ``expect_tensor`` the suite made on a reply: the reference's expected tensor,
  tolerance and message text, linked to the reply (and the place inside it) it checked.

``replay.py`` (shipped in the bundle) sends the same calls to the student's worker and checks each reply:
linked comparisons exactly as the suite made them; every other part of a reply against what the solution
returned (floats within the largest tolerance that test used, everything else exactly). Week-specific
adjustments (a laziness counter that may differ between correct solutions, error types that are
equally acceptable) live in ``weeks.py``. Tests that cannot be replayed from data (they need the kit's
trusted stand-in models) are listed with the reason and left out of the snapshot's maximum.

The recorded data reveals the inputs and the expected outputs of every check (see docs/platforms.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
from pathlib import Path

import torch

from .. import __version__, compare, proxy
from ..assignments import Assignment, get_assignment
from ..sandbox import codec
from ..sandbox.supervisor import Limits

from .common import FEEDBACK_LEVELS, FORMAT, HANDLE, REF, calibrate

ACTIVE: "Recorder | None" = None  # the recorder of the run in progress (read by _record_plugin)


class ExportError(Exception):
    pass


def _primitive(x) -> bool:
    return x is None or isinstance(x, (bool, int, float, str, bytes, torch.dtype))


class Recorder:
    """Holds the transcript of every test while the live suite runs on the solution."""

    def __init__(self, seed: int):
        self.seed = seed  # hypothesis draws from this seed, not from live grading's derandomized one
        self._saved_seed: dict[str, object] = {}
        self.tests: dict[str, dict] = {}
        self.order: list[str] = []
        self.test: dict | None = None
        self.pending: dict | None = None
        self.slots = 0
        self.objects: dict[int, tuple[int, tuple]] = {}  # id(reply object) -> (slot, path)
        self.handles: dict[int, tuple[int, tuple]] = {}  # worker handle id -> (slot, path)
        self.alive: list = []  # keeps reply objects alive so their ids stay unique
        self.problems: list[str] = []

    # -- test boundaries (from the pytest plugin) ------------------------------------------------------
    def begin(self, item) -> None:
        exercise = _marker(item, "exercise")
        test_id = f"{exercise}::{item.name}"
        doc = (item.function.__doc__ or item.name).strip().splitlines()[0]
        self.test = self.tests.setdefault(test_id, {"id": test_id, "exercise": exercise, "description": doc,
                                                    "points": _marker(item, "points"), "events": [],
                                                    "tolerance": 0.0, "unlinked_checks": 0})
        if test_id not in self.order:
            self.order.append(test_id)
        fn = getattr(item, "obj", None)
        if fn is not None and hasattr(fn, "_hypothesis_internal_use_seed"):
            self._saved_seed[item.nodeid] = fn._hypothesis_internal_use_seed
            fn._hypothesis_internal_use_seed = self.seed
        module = item.module
        for name, hook in (("assert_close", _recording_assert_close), ("expect_tensor", _recording_expect_tensor)):
            if getattr(module, name, None) is getattr(compare, name):
                setattr(module, name, hook)

    def end(self, item) -> None:
        if item.nodeid in self._saved_seed:
            item.obj._hypothesis_internal_use_seed = self._saved_seed.pop(item.nodeid)
        self.test = None
        self.pending = None

    # -- encoding values ---------------------------------------------------------------------------------
    def encode_arg(self, value, depth: int = 0):
        """An argument as data: earlier replies and remote objects become references, tensors are copied."""
        if isinstance(value, proxy.Remote):
            if isinstance(value._target, codec.Handle) and not value._attr:
                return self._handle_ref(value._target)
            raise ExportError(f"cannot record {value!r} passed as an argument")
        if isinstance(value, codec.Handle):
            return self._handle_ref(value)
        if not _primitive(value) and id(value) in self.objects and _nonempty(value):
            slot, path = self.objects[id(value)]
            return {REF: [slot, list(path)]}
        if isinstance(value, torch.Tensor):
            return value.detach().clone()
        if depth > 20:
            raise ExportError("argument nested too deeply to record")
        if isinstance(value, list):
            return [self.encode_arg(v, depth + 1) for v in value]
        if isinstance(value, tuple):
            return tuple(self.encode_arg(v, depth + 1) for v in value)
        if isinstance(value, dict):
            return {k: self.encode_arg(v, depth + 1) for k, v in value.items()}
        return value

    def _handle_ref(self, handle) -> dict:
        if handle.id not in self.handles:
            raise ExportError(f"object handle {handle.id} was not returned by a recorded call")
        slot, path = self.handles[handle.id]
        return {REF: [slot, list(path)]}

    def store_reply(self, value, slot: int, path: tuple = (), depth: int = 0):
        """Register the objects inside a reply (for references) and return it as data."""
        if isinstance(value, codec.Handle):
            self.handles[value.id] = (slot, path)
            return {HANDLE: value.type}
        if not _primitive(value) and _nonempty(value):
            self.objects[id(value)] = (slot, path)
            self.alive.append(value)
        if depth > 20:
            return value
        if isinstance(value, list):
            return [self.store_reply(v, slot, path + (i,), depth + 1) for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return tuple(self.store_reply(v, slot, path + (i,), depth + 1) for i, v in enumerate(value))
        if isinstance(value, dict):
            return {k: self.store_reply(v, slot, path + (k,), depth + 1) for k, v in value.items()}
        if isinstance(value, torch.Tensor):
            return value.detach().clone()
        return value

    def locate(self, value):
        if _primitive(value) or not _nonempty(value):
            return None
        return self.objects.get(id(value))

    # -- events ------------------------------------------------------------------------------------------
    def new_slot(self) -> int:
        self.slots += 1
        return self.slots

    def add(self, event: dict) -> None:
        if self.test is None:
            self.problems.append(f"a call outside any test: {event.get('label', event.get('name'))}")
            return
        self.test["events"].append(event)


def _nonempty(value) -> bool:
    try:
        return not isinstance(value, (list, tuple, dict, str, bytes)) or len(value) > 0
    except TypeError:
        return True


def _marker(item, name):
    marker = item.get_closest_marker(name)
    return marker.args[0] if marker and marker.args else None


# -- hooks installed on the grader side while recording -----------------------------------------------------
_ORIGINAL = {"msg": proxy.Remote._msg, "request": proxy.Student._request, "part": proxy.Student.part,
             "assert_close": compare.assert_close, "expect_tensor": compare.expect_tensor}


def _recording_msg(self, op, args, kwargs, **extra):
    msg = _ORIGINAL["msg"](self, op, args, kwargs, **extra)
    rec = ACTIVE
    if rec is not None and rec.test is not None:
        target = self._target
        event = {"kind": "call", "op": op, "attr": self._attr, "root": self._root, "label": self._label,
                 "swap": list(self._swap),
                 "target": rec._handle_ref(target) if isinstance(target, codec.Handle) else {"name": target},
                 "args": [rec.encode_arg(a) for a in args],
                 "kwargs": {k: rec.encode_arg(v) for k, v in kwargs.items()},
                 "extra": {k: rec.encode_arg(v) for k, v in extra.items()}}
        rec.pending = event
    return msg


def _recording_request(self, root, label, msg, timeout=None):
    rec = ACTIVE
    event = rec.pending if rec is not None else None
    if rec is not None:
        rec.pending = None
    try:
        value = _ORIGINAL["request"](self, root, label, msg, timeout)
    except proxy.StudentError as exc:
        if event is not None:
            event.update(slot=rec.new_slot(), timeout=timeout, outcome={"error": exc.type_name})
            rec.add(event)
        raise
    except proxy.StudentAbort as exc:
        if event is not None:
            event.update(slot=rec.new_slot(), timeout=timeout, outcome={"abort": exc.message})
            rec.add(event)
        raise
    if event is not None:
        slot = rec.new_slot()
        event.update(slot=slot, timeout=timeout, outcome={"ok": rec.store_reply(value, slot)})
        rec.add(event)
    return value


def _recording_part(self, name, *args, **kwargs):
    rec = ACTIVE
    event = None
    if rec is not None and rec.test is not None:
        event = {"kind": "part", "name": name, "args": [rec.encode_arg(a) for a in args],
                 "kwargs": {k: rec.encode_arg(v) for k, v in kwargs.items()}}
    value = _ORIGINAL["part"](self, name, *args, **kwargs)
    if event is not None:
        slot = rec.new_slot()
        raw = value._target if isinstance(value, proxy.Remote) else value
        event.update(slot=slot, outcome={"ok": rec.store_reply(raw, slot)})
        rec.add(event)
    return value


def _recording_assert_close(actual, expected, atol, rtol=0.0, what="output"):
    rec = ACTIVE
    if rec is not None and rec.test is not None:
        rec.test["tolerance"] = max(rec.test["tolerance"], float(atol))
        where = rec.locate(actual)
        if where is None:
            rec.test["unlinked_checks"] += 1
        else:
            event = {"kind": "close", "ref": [where[0], list(where[1])],
                     "expected": expected.detach().to(torch.float64).clone(), "atol": float(atol),
                     "rtol": float(rtol), "what": what}
            own = rec.locate(expected)  # compared with the submission's own earlier reply, not the reference
            if own is not None:
                event["expected_ref"] = [own[0], list(own[1])]
            rec.add(event)
    return _ORIGINAL["assert_close"](actual, expected, atol, rtol, what)


def _recording_expect_tensor(value, what, shape=None, dtype=None, floating=False):
    rec = ACTIVE
    if rec is not None and rec.test is not None:
        where = rec.locate(value)
        if where is not None:
            rec.add({"kind": "expect", "ref": [where[0], list(where[1])], "what": what,
                     "shape": list(shape) if shape is not None else None,
                     "dtype": str(dtype).replace("torch.", "") if dtype is not None else None,
                     "floating": bool(floating)})
    return _ORIGINAL["expect_tensor"](value, what, shape=shape, dtype=dtype, floating=floating)


class _Hooks:
    def __enter__(self):
        proxy.Remote._msg = _recording_msg
        proxy.Student._request = _recording_request
        proxy.Student.part = _recording_part
        return self

    def __exit__(self, *exc):
        proxy.Remote._msg = _ORIGINAL["msg"]
        proxy.Student._request = _ORIGINAL["request"]
        proxy.Student.part = _ORIGINAL["part"]


# -- recording a week ---------------------------------------------------------------------------------------
def solution_notebook(assignment: Assignment) -> Path:
    from ..release import KIT_ROOT

    path = KIT_ROOT / "assignments" / assignment.slug / assignment.notebook
    if not path.is_file():
        raise ExportError(f"{path}: the instructor's notebook is needed to record a snapshot")
    return path


def record(slug: str, limits: Limits = Limits(), solution: Path | None = None, seed: int | None = None,
           published: tuple[str, ...] = ()) -> dict:
    """Run the live suite on the solution and return the snapshot (plain data, tensors included).

    ``published``: earlier weeks whose solutions the instructor has published, so the bundle may carry the
    kit's stand-ins that implement them (``weeks.part_modules``); tests needing other stand-ins are not covered.

    Hypothesis draws from ``seed`` (default: a fresh random one) instead of the derandomized seed live grading
    uses, so the inputs a published snapshot reveals are not the inputs the official live run will draw."""
    import secrets
    global ACTIVE
    from ..grading import grade
    from . import weeks

    assignment = get_assignment(slug)
    try:
        modules, names = weeks.part_modules(slug, published), weeks.public_parts(slug, published)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    solution = solution or solution_notebook(assignment)
    seed = secrets.randbits(64) if seed is None else seed
    recorder = Recorder(seed)
    ACTIVE = recorder
    try:
        with _Hooks():
            result = grade(solution, slug, limits, suite_args=["-p", "autograder.export._record_plugin"])
    finally:
        ACTIVE = None
        _unhook_suite()
    failing = [t.id for t in result.tests if t.points != t.max_points]
    if failing:
        raise ExportError(f"the solution does not get full marks on the live suite, so it cannot be recorded: "
                          f"{', '.join(failing)}")
    if recorder.problems:
        raise ExportError("recording failed: " + "; ".join(recorder.problems))
    tests, not_covered = [], []
    for test_id in recorder.order:
        test = recorder.tests[test_id]
        reason = _uncovered_reason(test, names)
        if reason:
            not_covered.append({"id": test_id, "exercise": test["exercise"], "points": test["points"],
                                "description": test["description"], "reason": reason})
            continue
        _mark_covered(test)
        tests.append(test)
    weeks.adjust(slug, tests)
    not_run = [w for w in result.warnings if w.startswith("not graded on")]
    return {
        "format": FORMAT, "assignment": slug, "title": assignment.title, "notebook": assignment.notebook,
        "kit_version": __version__, "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "recorded_on": {"python": platform.python_version(), "torch": torch.__version__,
                        "machine": platform.machine()},
        "calibration_s": calibrate(), "hypothesis_seed": seed, "tests": tests, "not_covered": not_covered, "not_graded_on_cpu": not_run,
        "banned": {ex.name: list(ex.banned) for ex in assignment.exercises if ex.banned},
        "definitions": {ex.name: ex.defines for ex in assignment.exercises},
        "exercises": [ex.name for ex in assignment.exercises],
        "parts": list(names), "part_modules": list(modules), "published_solutions": list(published),
        "live_max_score": result.max_score,
        "limits": limits.describe(),
    }


def _unhook_suite() -> None:
    """Put the suite modules' own ``assert_close`` / ``expect_tensor`` back."""
    import sys

    for module in list(sys.modules.values()):
        for name in ("assert_close", "expect_tensor"):
            hooked = {"assert_close": _recording_assert_close, "expect_tensor": _recording_expect_tensor}[name]
            if getattr(module, name, None) is hooked:
                setattr(module, name, _ORIGINAL[name])


def _uncovered_reason(test: dict, parts: tuple[str, ...]) -> str | None:
    for event in test["events"]:
        if event["kind"] == "part" and event["name"] not in parts:
            return (f"needs the kit's trusted {event['name']} in the student's worker: a correct implementation of "
                    f"a graded exercise, which a public bundle carries only for an earlier week whose solutions are "
                    f"published (--solutions-published-through)")
        if event["kind"] == "call" and "abort" in event["outcome"]:
            return f"the solution's call {event['label']} was stopped ({event['outcome']['abort']})"
    if not any(e["kind"] == "call" for e in test["events"]):
        return "makes no call into student code"
    return None


def _mark_covered(test: dict) -> None:
    """Per reply, the places a linked comparison checks (replay compares everything else by value)."""
    covered: dict[int, list] = {}
    for event in test["events"]:
        if event["kind"] == "close":
            covered.setdefault(event["ref"][0], []).append(event["ref"][1])
            if "expected_ref" in event:  # a reply the suite compared only with the submission's own later one
                covered.setdefault(event["expected_ref"][0], []).append(event["expected_ref"][1])
    for event in test["events"]:
        if event["kind"] in ("call", "part"):
            event["covered"] = covered.get(event["slot"], [])
            event.setdefault("compare", {})


# -- files ---------------------------------------------------------------------------------------------------
def write(snapshot: dict, folder: Path, feedback: str = "full") -> dict:
    """``snapshot.bin`` (the kit's data-only codec: JSON plus raw tensor buffers, nothing is unpickled) and
    ``manifest.json`` (what is in it, readable by a person). Returns the manifest."""
    if feedback not in FEEDBACK_LEVELS:
        raise ExportError(f"feedback must be one of {', '.join(FEEDBACK_LEVELS)}")
    folder.mkdir(parents=True, exist_ok=True)
    data = codec.encode({"tests": snapshot["tests"]})
    (folder / "snapshot.bin").write_bytes(data)
    manifest = {k: v for k, v in snapshot.items() if k != "tests"}
    manifest.update(
        feedback=feedback, snapshot_sha256=hashlib.sha256(data).hexdigest(), snapshot_bytes=len(data),
        max_score=sum(t["points"] for t in snapshot["tests"]),
        tests=[{"id": t["id"], "exercise": t["exercise"], "description": t["description"], "points": t["points"],
                "calls": sum(e["kind"] in ("call", "part") for e in t["events"]),
                "stand_ins": sorted({e["name"] for e in t["events"] if e["kind"] == "part"}),
                "linked_checks": sum(e["kind"] == "close" for e in t["events"])} for t in snapshot["tests"]],
        reveals=("the inputs of every recorded call and the expected outputs of every check (the reference's "
                 "tensors and the solution's replies); not the reference, solution or hidden-test source"),
    )
    (folder / "manifest.json").write_text(_readable_json(manifest))
    return manifest


def _readable_json(data: dict) -> str:
    """One key per line, lists one item per line, everything else compact (a person can read it, and no
    line looks like a line of code for the bundle's leak check)."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            items = ",\n".join(f"  {json.dumps(v)}" for v in value)
            lines.append(f" {json.dumps(key)}: [\n{items}\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"
