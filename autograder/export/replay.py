"""Grade a notebook against a recorded snapshot (see ``snapshot.py``): the public half, copied into bundles.

Everything here is safe to publish: it holds no reference, solution or hidden test, only the machinery to
send recorded calls to the student's worker (the kit's sandbox: separate process, time and memory limits)
and to compare the replies with recorded expectations. Run as a module for a quick local check:

    python -m <package>.export.replay NOTEBOOK SNAPSHOT_DIR [--feedback full|actual-only|none]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from .. import compare
from ..banned import check_banned
from ..proxy import Remote, Student, StudentAbort, StudentError
from ..sandbox import codec
from ..sandbox.supervisor import GraderFailure, Limits, Sandbox
from ..student.notebook import NotebookError, extract, read_notebook
from .common import FEEDBACK_LEVELS, HANDLE, REF, calibrate

RESULT_SCHEMA = "llmkit/snapshot-result/v1"
MISSING = object()


class Mismatch(AssertionError):
    """A reply differs from the recorded expectation; carries what feedback may show."""

    def __init__(self, message: str, actual=MISSING, expected=MISSING):
        super().__init__(message)
        self.actual, self.expected = actual, expected


def load(folder: Path) -> tuple[dict, list[dict]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    tests = codec.decode((folder / "snapshot.bin").read_bytes())["tests"]
    return manifest, tests


def find_notebook(path: Path, slug: str, notebook: str) -> Path:
    if path.is_file():
        return path
    for candidate in (path / slug / notebook, path / notebook):
        if candidate.is_file():
            return candidate
    raise NotebookError(f"no {notebook} found in {path} (looked in {slug}/ and the folder itself)")


# -- values ----------------------------------------------------------------------------------------------------
def _get(slots: dict, ref) -> object:
    slot, path = ref
    if slot not in slots:
        raise Mismatch("this check needs the reply of an earlier call that did not complete")
    value = slots[slot]
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise Mismatch(f"the reply has no {key!r} where one was expected") from None
    return value


def _resolve(value, slots: dict):
    if isinstance(value, dict):
        if set(value) == {REF}:
            return _get(slots, value[REF])
        return {k: _resolve(v, slots) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, slots) for v in value]
    if isinstance(value, tuple):
        return tuple(_resolve(v, slots) for v in value)
    return value


def summarize(value, limit: int = 300) -> str:
    """A short, readable description of a value for feedback (tensors: shape, dtype and leading values)."""
    if isinstance(value, Remote):
        return "<an object in your worker>"
    if torch.is_tensor(value):
        flat = value.detach().reshape(-1)[:8].tolist()
        text = f"tensor(shape={tuple(value.shape)}, dtype={str(value.dtype).replace('torch.', '')}, first values {flat})"
    elif isinstance(value, dict) and set(value) == {"$lines"}:
        text = f"an iterator over {len(value['$lines'])} lines"
    elif isinstance(value, dict) and set(value) == {HANDLE}:
        text = f"<a {value[HANDLE]} object>"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 12] + " ...(cut)"


# -- comparing a reply with the solution's ------------------------------------------------------------------
def _prefix(path: list, places: list) -> bool:
    return any(list(path[: len(p)]) == list(p) for p in places)


def same(actual, expected, tol: float, what: str, path: list, skip: list, numbers: bool = False) -> None:
    """Raise ``Mismatch`` where ``actual`` differs from ``expected`` (floats within ``tol``). ``numbers``: a
    one-element tensor and a Python number stand for each other (where the notebook accepts either)."""
    if _prefix(path, skip):
        return
    where = what + "".join(f"[{p!r}]" for p in path)
    if numbers and torch.is_tensor(actual) and actual.numel() == 1 and isinstance(expected, (int, float)) \
            and not isinstance(expected, bool):
        actual = actual.item()
    if numbers and torch.is_tensor(expected) and expected.numel() == 1 and isinstance(actual, (int, float)) \
            and not isinstance(actual, bool):
        actual = torch.tensor(actual, dtype=expected.dtype).reshape(expected.shape)
    if isinstance(expected, dict) and set(expected) == {HANDLE}:
        if not isinstance(actual, (Remote, codec.Handle)):
            raise Mismatch(f"{where} should be an object, got {type(actual).__name__}", actual, expected)
        return
    if torch.is_tensor(expected):
        if not torch.is_tensor(actual):
            raise Mismatch(f"{where} should be a torch.Tensor, got {type(actual).__name__}", actual, expected)
        if tuple(actual.shape) != tuple(expected.shape):
            raise Mismatch(f"{where} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}", actual, expected)
        if expected.is_floating_point():
            if not actual.is_floating_point():
                raise Mismatch(f"{where} has dtype {actual.dtype}, expected a floating-point tensor", actual, expected)
            _close(actual, expected, tol, where)
        elif not torch.equal(actual.detach().to(torch.float64), expected.to(torch.float64)):
            wrong = actual.detach().to(torch.float64) != expected.to(torch.float64)
            first = tuple(int(i) for i in wrong.nonzero()[0]) if wrong.dim() else ()
            raise Mismatch(f"{where} differs from the reference at {int(wrong.sum())} of {wrong.numel()} positions "
                           f"(first at index {first})", actual, expected)
        return
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)):
            raise Mismatch(f"{where} should be a {type(expected).__name__}, got {type(actual).__name__}", actual, expected)
        if len(actual) != len(expected):
            raise Mismatch(f"{where} has {len(actual)} items, expected {len(expected)}", actual, expected)
        for i, (a, e) in enumerate(zip(actual, expected)):
            same(a, e, tol, what, path + [i], skip, numbers)
        return
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise Mismatch(f"{where} should be a dict, got {type(actual).__name__}", actual, expected)
        if set(actual) != set(expected):
            extra, missing = sorted(set(actual) - set(expected), key=repr), sorted(set(expected) - set(actual), key=repr)
            raise Mismatch(f"{where} has different keys ({len(missing)} missing, {len(extra)} unexpected"
                           f"{', e.g. unexpected ' + repr(extra[0])[:60] if extra else ''})", actual, expected)
        for k in expected:
            same(actual[k], expected[k], tol, what, path + [k], skip, numbers)
        return
    if isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        if not (math.isclose(actual, expected, abs_tol=tol) or (math.isnan(actual) and math.isnan(expected))):
            raise Mismatch(f"{where} is {actual!r}, which is not the expected value (tolerance {tol:.2g})", actual, expected)
        return
    if type(actual) is not type(expected) or actual != expected:
        if type(actual) is not type(expected):
            raise Mismatch(f"{where} is a {type(actual).__name__}, expected a {type(expected).__name__}", actual, expected)
        raise Mismatch(f"{where} is not the expected value", actual, expected)


def _ranking(value, expected, rule: dict):
    """A ranked reply, ``(indices, scores)`` (layout "pair") or ``[(index, score), ...]`` ("rows"), as runs of
    the expected scores that lie within ``rule["tol"]`` of each other: per run, the set of indices and the
    scores, except the last run (the cut-off), where only the scores count. Both sides are cut where the
    expected side's runs end; unchanged where a side is not such a reply."""
    def rows(reply):
        try:
            if rule["layout"] == "pair":
                return [(int(i), float(s)) for i, s in zip(list(reply[0]), list(reply[1]), strict=True)]
            return [(int(i), float(s)) for i, s in reply]
        except Exception:  # noqa: BLE001  (not a ranking: compared as it is, and the mismatch is reported)
            return None

    got, want = rows(value), rows(expected)
    if got is None or want is None or len(got) != len(want):
        return value, expected
    bounds, start = [], 0
    for i in range(1, len(want) + 1):
        if i == len(want) or abs(want[i][1] - want[i - 1][1]) > rule["tol"]:
            bounds.append((start, i))
            start = i

    def runs(side):
        out = []
        for n, (lo, hi) in enumerate(bounds):
            scores = [s for _, s in side[lo:hi]]
            out.append({"scores": scores} if n == len(bounds) - 1 else
                       {"indices": sorted(i for i, _ in side[lo:hi]), "scores": sorted(scores)})
        return out

    return runs(got), runs(want)


def _unordered_rows(reply, place: list, rows: bool = True):
    """``reply`` with the list of batches at ``place`` (each a list of tensors sharing a first dimension)
    replaced by their batch sizes and (``rows``) their rows in sorted order; unchanged where it is not such
    a list."""
    try:
        batches = _get({0: reply}, [0, list(place)])
        sizes = [int(b[0].shape[0]) for b in batches]
        windows = sorted(tuple(tuple(part[i].reshape(-1).tolist()) for part in batch)
                         for batch in batches for i in range(batch[0].shape[0]))
    except Exception:  # noqa: BLE001  (a malformed reply: compared as it is, and the mismatch is reported)
        return reply
    canonical = {"batch sizes": sizes}
    if rows:
        canonical["windows, sorted"] = [[list(part) for part in window] for window in windows]
    if not place:
        return canonical
    copy = dict(reply) if isinstance(reply, dict) else list(reply)
    node = copy
    for key in place[:-1]:
        node[key] = dict(node[key]) if isinstance(node[key], dict) else list(node[key])
        node = node[key]
    node[place[-1]] = canonical
    return copy


def _close(actual: torch.Tensor, expected: torch.Tensor, tol: float, where: str) -> None:
    a, e = actual.detach().to(torch.float64), expected.to(torch.float64)
    if not torch.equal(torch.isnan(a), torch.isnan(e)):
        raise Mismatch(f"{where} has NaN where the reference has none (or the other way round)", actual, expected)
    inf_a, inf_e = torch.isinf(a), torch.isinf(e)
    if not torch.equal(inf_a, inf_e) or not torch.equal(a[inf_a].sign(), e[inf_e].sign()):
        raise Mismatch(f"{where} has infinities where the reference does not (or the other way round)", actual, expected)
    finite = torch.isfinite(e)
    err = torch.where(finite, (a - e).abs(), torch.zeros_like(a))
    if (err > tol).any():
        first = tuple(int(i) for i in (err > tol).nonzero()[0]) if err.dim() else ()
        raise Mismatch(f"{where} is wrong at {int((err > tol).sum())} of {a.numel()} positions (first at index {first}): "
                       f"max abs error {float(err.max()):.3g}, tolerance {tol:.2g}", actual, expected)


def _bounds(value, rules: dict, label: str) -> None:
    for key, bound in rules.get("below", {}).items():
        got = value.get(key) if isinstance(value, dict) else None
        if not isinstance(got, (int, float)) or got >= bound:
            raise Mismatch(f"{label}: {key} is {got!r}, it must be below {bound}"
                           + (" (the first result must come before the whole input is read)" if key == "pulled" else ""))
    for key, bound in rules.get("at_most", {}).items():
        got = value.get(key) if isinstance(value, dict) else None
        if not isinstance(got, (int, float)) or got > bound:
            raise Mismatch(f"{label}: {key} is {got!r}, the limit is {bound}")


# floats a trusted tool computed from the submission's objects (losses of a few training steps) may round
# differently for correct submissions; live grading checks those values with its own tolerances
PART_TOLERANCE = 1e-4


def _skipped(event: dict) -> list:
    """Places in a reply not compared with the solution's: checked by a recorded comparison, or ignored."""
    return [list(p) for p in event.get("covered", [])] + [list(p) for p in event.get("compare", {}).get("ignore", [])]


# -- replaying one test -------------------------------------------------------------------------------------
class Replayer:
    def __init__(self, student: Student, parts: tuple[str, ...], time_scale: float):
        self.student = student
        self.parts = set(parts)
        self.time_scale = time_scale
        self.slots: dict[int, object] = {}
        self.generation: dict[int, int] = {}
        self.last_call: dict | None = None
        self.last_args = None

    def run(self, test: dict) -> None:
        tol = float(test.get("tolerance") or 0.0)
        for event in test["events"]:
            kind = event["kind"]
            if kind == "call":
                self.call(event, tol)
            elif kind == "part":
                self.part(event, tol)
            elif kind == "close":
                actual = _get(self.slots, event["ref"])
                expected = _get(self.slots, event["expected_ref"]) if "expected_ref" in event else event["expected"]
                try:
                    compare.assert_close(actual, expected, event["atol"], event["rtol"], event["what"])
                except Mismatch:
                    raise
                except AssertionError as exc:
                    raise Mismatch(str(exc), actual, expected) from None
            elif kind == "expect":
                dtype = getattr(torch, event["dtype"]) if event["dtype"] else None
                compare.expect_tensor(_get(self.slots, event["ref"]), event["what"], shape=event["shape"], dtype=dtype,
                                      floating=event["floating"])

    def _target(self, event: dict):
        target = event["target"]
        if "name" in target:
            return target["name"], None
        obj = _get(self.slots, target[REF])
        if isinstance(obj, Remote):
            return obj._target, obj._generation
        if isinstance(obj, codec.Handle):
            return obj, self.generation.get(target[REF][0])
        raise Mismatch(f"{event['label']}: needs the object an earlier call should have returned, but that call "
                       f"returned {type(obj).__name__}")

    def call(self, event: dict, tol: float) -> None:
        target, generation = self._target(event)
        remote = Remote(self.student, target, event["attr"], event["root"], event["label"])
        if generation is not None:
            remote._generation = generation
        remote._swap = tuple(n for n in event["swap"] if n in self.parts)
        args = _resolve(event["args"], self.slots)
        kwargs = _resolve(event["kwargs"], self.slots)
        extra = _resolve(event["extra"], self.slots)
        timeout = event.get("timeout")
        if timeout:
            timeout = timeout * self.time_scale
        self.last_call, self.last_args = event, (args, kwargs)
        rules = event.get("compare", {})
        outcome = event["outcome"]
        op = event["op"]
        try:
            if op == "call":
                value = remote.timed(*args, timeout=timeout, **kwargs)[0] if timeout else remote(*args, **kwargs)
            elif op == "vjp":
                value = remote.vjp(*args, cotangent=extra["cotangent"], **kwargs)
            elif op == "iterate":
                value = remote.iterate(*args, mode=extra.get("mode", "list"), limit=extra.get("limit", 10_000_000),
                                       timeout=timeout, **kwargs)
            elif op == "load_parameters":
                value = remote.load_parameters(extra["state"])
            else:
                raise RuntimeError(f"unknown recorded operation {op!r}")
        except StudentError as exc:
            accepted = rules.get("errors") or ([outcome["error"]] if "error" in outcome else [])
            if "error" in outcome and exc.type_name in accepted:
                self.slots[event["slot"]] = exc
                return
            raise
        if "error" in outcome:
            accepted = rules.get("errors") or [outcome["error"]]
            raise Mismatch(f"{event['label']}(...) returned normally; it should raise {' or '.join(accepted)} here",
                           value)
        self.slots[event["slot"]] = value
        self.generation[event["slot"]] = self.student._sandbox.restarts
        if op == "load_parameters":
            return
        skip = _skipped(event)
        expected = outcome["ok"]
        for place in rules.get("unordered_rows", []):  # a shuffled loader: any order of the same windows
            value, expected = _unordered_rows(value, place), _unordered_rows(expected, place)
        for place in rules.get("batch_sizes", []):  # shuffled and cut: which windows are dropped is chance
            value, expected = _unordered_rows(value, place, False), _unordered_rows(expected, place, False)
        if rules.get("ranking"):  # near-equal scores may come in either order, and either may make the cut
            value, expected = _ranking(value, expected, rules["ranking"])
        same(value, expected, tol, f"{event['label']}(...)", [], skip, bool(rules.get("numbers")))
        _bounds(value, rules, f"{event['label']}(...)")

    def part(self, event: dict, tol: float) -> None:
        if event["name"] not in self.parts:
            raise RuntimeError(f"this bundle has no stand-in {event['name']!r}")
        value = self.student.part(event["name"], *_resolve(event["args"], self.slots),
                                  **_resolve(event["kwargs"], self.slots))
        self.slots[event["slot"]] = value
        self.generation[event["slot"]] = self.student._sandbox.restarts
        # what a tool read off the submission's objects (a forward log, parameters) is a reply like any other
        same(value, event["outcome"]["ok"], max(tol, PART_TOLERANCE), f"{event['name']}(...)", [], _skipped(event),
             bool(event.get("compare", {}).get("numbers")))


def feedback_message(exc: BaseException, level: str, replayer: Replayer | None) -> str:
    if level == "none":
        return "failed"
    message = str(exc) or "check failed"
    call = replayer.last_call if replayer else None
    if call is not None and isinstance(exc, (AssertionError, StudentError)):
        args, kwargs = replayer.last_args
        shown = [summarize(a, 200) for a in args] + [f"{k}={summarize(v, 200)}" for k, v in kwargs.items()]
        message += f"\ninput: {call['label']}({', '.join(shown)})"[:1200]
        if isinstance(exc, Mismatch) and exc.actual is not MISSING:
            message += f"\nyour output: {summarize(exc.actual)}"
        if level == "full" and isinstance(exc, Mismatch) and exc.expected is not MISSING:
            message += f"\nexpected: {summarize(exc.expected)}"
    return message


# -- a whole notebook -----------------------------------------------------------------------------------------
def grade_snapshot(submission: Path, folder: Path, limits: Limits | None = None, feedback: str | None = None,
                   on_test=None) -> dict:
    """Grade ``submission`` (a notebook, or a folder holding ``<slug>/<notebook>``) against the snapshot in
    ``folder``; returns a result dict (schema ``llmkit/snapshot-result/v1``). ``on_test(record)`` is called
    after each test, so a caller can keep partial results if a time limit stops the run."""
    started = time.monotonic()
    manifest, tests = load(folder)
    level = feedback or manifest.get("feedback", "full")
    if level not in FEEDBACK_LEVELS:
        raise ValueError(f"feedback must be one of {', '.join(FEEDBACK_LEVELS)}")
    limits = limits or Limits()
    result = {"schema": RESULT_SCHEMA, "assignment": manifest["assignment"], "mode": "snapshot", "feedback": level,
              "status": "completed", "tests": [], "warnings": [], "not_covered": manifest["not_covered"],
              "snapshot_sha256": manifest["snapshot_sha256"]}
    reject = None
    sandbox = None
    banned: dict[str, str] = {}
    try:
        path = find_notebook(Path(submission), manifest["assignment"], manifest["notebook"])
        nb = read_notebook(path)
    except NotebookError as exc:
        reject = str(exc)
        result["status"] = "rejected"
        result["warnings"].append(reject)
    else:
        extraction = extract(nb)
        result["warnings"] += [f"syntax error in {e}" for e in extraction.syntax_errors]
        banned = check_banned(extraction, {k: tuple(v) for k, v in manifest["banned"].items()}, manifest["definitions"])
        statements = [{"source": s.source, "cell": s.cell, "line": s.line, "names": s.names}
                      for s in extraction.statements]
        sandbox = Sandbox(statements, limits, parts=tuple(manifest.get("part_modules", ())))
        sandbox.start()
        student = Student(sandbox, extraction)
    scale = max(1.0, calibrate() / max(manifest.get("calibration_s") or 1e-9, 1e-9)) if sandbox else 1.0
    replayer = Replayer(student, tuple(manifest.get("parts", ())), scale) if sandbox else None
    try:
        for test in tests:
            t0 = time.monotonic()
            record = {"id": test["id"], "exercise": test["exercise"], "description": test["description"],
                      "points": 0, "max_points": test["points"], "status": "pass", "message": ""}
            if reject is not None:
                record.update(status="fail", message=reject)
            elif test["exercise"] in banned:
                record.update(status="fail", message=banned[test["exercise"]] if level != "none" else "failed")
            else:
                try:
                    replayer.run(test)
                except GraderFailure:
                    raise
                except (AssertionError, StudentError, StudentAbort) as exc:
                    record.update(status="fail", message=feedback_message(exc, level, replayer))
                except Exception as exc:  # noqa: BLE001  a fault of the snapshot or of this grader
                    record.update(status="error",
                                  message=f"grader error ({type(exc).__name__}) in this test; please tell your course staff")
            if record["status"] == "pass":
                record["points"] = record["max_points"]
            record["duration"] = round(time.monotonic() - t0, 4)
            result["tests"].append(record)
            if on_test is not None:
                on_test(record)
    finally:
        if sandbox is not None:
            sandbox.close()
    if sandbox is not None and sandbox.failure:
        raise RuntimeError(sandbox.failure)
    result["score"] = sum(t["points"] for t in result["tests"])
    result["max_score"] = sum(t["max_points"] for t in result["tests"])
    result["isolation"] = sandbox.isolation() if sandbox else {}
    result["time_scale"] = round(scale, 3)
    result["duration_s"] = round(time.monotonic() - started, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="grade a notebook against a snapshot")
    parser.add_argument("submission")
    parser.add_argument("snapshot", type=Path)
    parser.add_argument("--feedback", choices=FEEDBACK_LEVELS)
    parser.add_argument("--out", type=Path, help="write the result here (JSON) instead of printing it")
    parser.add_argument("--progress", type=Path, help="append each test's record as a JSON line as it finishes")
    args = parser.parse_args(argv)

    def progress(record):
        if args.progress:
            with open(args.progress, "a") as fh:
                fh.write(json.dumps(record) + "\n")

    result = grade_snapshot(Path(args.submission), args.snapshot, feedback=args.feedback, on_test=progress)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
