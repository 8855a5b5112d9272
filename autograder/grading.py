"""Grade one submission: extract, check banned APIs, run the hidden suite against the sandbox, report.

The hidden suite runs here, in the trusted process, with pytest; its tests hold a ``student`` fixture
(``proxy.Student``) instead of student code. Every test carries ``@pytest.mark.points(n)`` and
``@pytest.mark.exercise(name)``; the score is the sum of the points of the tests that pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, checksums
from .assignments import Assignment, get_assignment
from .banned import check_banned
from .sandbox.protect import protect_trusted_files
from .sandbox.supervisor import Limits, Sandbox
from .student.notebook import Extraction, NotebookError, extract, read_notebook

SCHEMA = "llmkit/result/v1"


@dataclass
class TestRecord:
    id: str
    exercise: str
    description: str
    points: int
    max_points: int
    status: str  # pass | fail | error
    message: str
    duration: float
    ran: bool = False  # the test body completed


@dataclass
class Result:
    assignment: str
    submission: str
    status: str = "completed"  # completed | rejected (notebook unreadable)
    tests: list[TestRecord] = field(default_factory=list)
    manual: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    banned: dict[str, str] = field(default_factory=dict)
    isolation: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
    extraction: dict = field(default_factory=dict)
    submission_sha256: str = ""
    duration_s: float = 0.0
    student_calls: int = 0
    environment: dict = field(default_factory=dict)

    @property
    def score(self) -> int:
        return sum(t.points for t in self.tests)

    @property
    def max_score(self) -> int:
        return sum(t.max_points for t in self.tests)

    def exercise_scores(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for t in self.tests:
            got, top = out.get(t.exercise, (0, 0))
            out[t.exercise] = (got + t.points, top + t.max_points)
        return out


class _Banned(BaseException):
    """Raised in setup of a test whose exercise uses a banned API (the test body never runs)."""


# torch, pytest and hypothesis take a second or more to import: grade() starts the student's worker
# first, so both processes import in parallel. Hence the late imports below.


class ScorePlugin:
    """Gives the suite its ``student`` fixture and turns pytest reports into ``TestRecord``s."""

    def __init__(self, student: Student | None, banned: dict[str, str], reject: str | None = None,
                 device: str = "cpu"):
        self._student = student
        self._device = device
        self.not_run_here: list[str] = []  # tests for another device, left out of the maximum
        self.banned = banned
        self.reject = reject  # set when the notebook is unreadable: every test fails with this reason
        self.records: dict[str, TestRecord] = {}
        self.collection_errors: list[str] = []
        self.collected = 0

    def student(self):
        return self._student

    def device(self):
        """Where tests put tensors and models: "cpu", or "cuda" on a GPU runner (``--device cuda``)."""
        return self._device

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "points(n): points the test is worth")
        config.addinivalue_line("markers", "exercise(name): the exercise the test grades")
        config.addinivalue_line("markers", "requires_device(name): only graded when grading on that device")

    def pytest_collection_modifyitems(self, items):
        # A GPU-only item graded on a CPU runner is neither passed nor failed: it is left out of the
        # maximum and listed in the result, so CPU and GPU runs are each complete on their own terms.
        keep = []
        for item in items:
            needs = _marker_arg(item, "requires_device")
            if needs and needs != self._device:
                self.not_run_here.append(f"{item.name} (needs --device {needs})")
            else:
                keep.append(item)
        items[:] = keep
        self.collected = len(items)

    def pytest_deselected(self, items):
        self.collection_errors.append(f"{len(items)} hidden tests were deselected")

    def pytest_collectreport(self, report):
        if report.failed:
            self.collection_errors.append(f"{report.nodeid}: {report.longreprtext[-2000:]}")

    def pytest_runtest_setup(self, item):
        exercise = _marker_arg(item, "exercise")
        if self.reject:
            raise _Banned(self.reject)
        if exercise in self.banned:
            raise _Banned(self.banned[exercise])

    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        record = self.records.get(item.nodeid)
        if record is None:
            points, exercise = _marker_arg(item, "points"), _marker_arg(item, "exercise")
            if not isinstance(points, int) or not exercise:
                raise ValueError(f"{item.nodeid} needs @pytest.mark.points(n) and @pytest.mark.exercise(name)")
            doc = (item.function.__doc__ or item.name).strip().splitlines()[0]
            record = TestRecord(f"{exercise}::{item.name}", exercise, doc, 0, points, "pass", "", 0.0)
            self.records[item.nodeid] = record
        record.duration += call.duration
        if call.excinfo is not None and record.status == "pass":
            record.status, record.message = _classify(call.excinfo.value)
        if report.when == "call" and report.passed:
            record.ran = True
        # points only when the test body ran and no phase (setup, call, teardown) failed
        record.points = record.max_points if record.ran and record.status == "pass" else 0


def _marker_arg(item, name):
    marker = item.get_closest_marker(name)
    return marker.args[0] if marker and marker.args else None


def _classify(exc: BaseException) -> tuple[str, str]:
    """(status, message) for a failed test, without any of the hidden test's source."""
    from .proxy import StudentAbort, StudentError

    if isinstance(exc, BaseExceptionGroup):  # hypothesis' FlakyFailure: failed once, passed on a retry
        inner = next((e for e in _leaves(exc) if isinstance(e, (AssertionError, StudentError, StudentAbort))), None)
        if inner is not None:
            status, message = _classify(inner)
            return status, message + "\n(it failed once, then passed on the same input: results must not depend " \
                "on state left over from earlier calls)"
    notes = [_failing_input(n) for n in getattr(exc, "__notes__", []) if n.startswith("Failing test case")]
    suffix = ("\n" + "\n".join(notes)) if notes else ""
    if isinstance(exc, (_Banned, StudentAbort)):
        return "fail", str(exc)
    if isinstance(exc, (AssertionError, StudentError)):
        return "fail", (str(exc) or "check failed") + suffix
    # Anything else is a fault in the hidden test itself: report it as an error, not a student fault.
    return "error", f"grader error ({type(exc).__name__}) in this test; please tell your course staff{suffix}"


def _leaves(group: BaseException):
    for e in getattr(group, "exceptions", [group]):
        yield from (_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])


def _failing_input(note: str) -> str:
    """Hypothesis' "Failing test case: test_x(student=..., s={...}, seed=0)" -> "smallest failing input: s={...}, seed=0"."""
    body = note.split("(", 1)[1].rsplit(")", 1)[0] if "(" in note else note
    keep = []
    for line in body.splitlines():
        line = line.split("  #", 1)[0].strip()
        if line and not line.startswith("#") and not line.startswith("student="):
            keep.append(line)
    text = " ".join(keep).replace("{ ", "{").replace(", }", "}").replace("[ ", "[").rstrip(",")
    return "smallest failing input: " + text.replace(",}", "}")


def find_notebook(path: Path, assignment: Assignment) -> Path:
    """A notebook path, or a repository/folder holding ``<slug>/<notebook>`` or ``<notebook>``."""
    if path.is_file():
        return path
    if not path.exists():
        raise NotebookError(f"{path}: no such notebook or folder")
    for candidate in (path / assignment.slug / assignment.notebook, path / assignment.notebook):
        if candidate.is_file():
            return candidate
    raise NotebookError(
        f"no {assignment.notebook} found in {path} (looked in {assignment.slug}/ and the folder itself)"
    )


def _original_notebook(assignment: Assignment) -> dict | None:
    """The instructor's notebook, when the kit is a checkout that has it (for locked-cell checks)."""
    path = Path(__file__).resolve().parent.parent / "assignments" / assignment.slug / assignment.notebook
    try:
        return read_notebook(path)
    except NotebookError:
        return None


def _manual_answers(nb, assignment: Assignment) -> list[dict]:
    answers = {}
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if gid:
            answers[gid] = cell.get("source", "")
    out = []
    for q in assignment.written:
        text = answers.get(q.grade_id)
        out.append({
            "id": q.grade_id, "prompt": q.prompt, "max_points": q.points, "status": "pending",
            "answer": text if text is not None else "",
            "answered": bool(text and text.strip() and text.strip() != "YOUR ANSWER HERE"),
        })
    return out


def grade(submission: str | Path, slug: str, limits: Limits = Limits(), suite_args: list[str] | None = None,
          device: str = "cpu", sandbox_factory=Sandbox) -> Result:
    """Grade ``submission`` for assignment ``slug``; always returns a complete ``Result``.

    ``device`` ("cpu" or "cuda") is handed to the hidden tests; items marked
    ``requires_device("cuda")`` are graded only there and otherwise left out of the maximum.
    ``sandbox_factory`` builds the worker's supervisor (the class grader passes a pre-warmed one)."""
    started = time.monotonic()
    assignment = get_assignment(slug)
    result = Result(assignment=slug, submission=str(submission), limits=limits.describe())
    protected = protect_trusted_files()
    sandbox = None
    try:
        path = find_notebook(Path(submission), assignment)
        result.submission_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        nb = read_notebook(path)
    except NotebookError as exc:
        result.status = "rejected"
        result.warnings.append(str(exc))
        plugin = ScorePlugin(None, {}, reject=str(exc), device=device)
    else:
        extraction = extract(nb)
        result.extraction = {
            "statements": len(extraction.statements), "skipped": len(extraction.skipped),
            "syntax_errors": extraction.syntax_errors,
        }
        result.warnings += [f"syntax error in {e}" for e in extraction.syntax_errors]
        result.warnings += checksums.modified_locked_cells(nb, _original_notebook(assignment))
        result.manual = _manual_answers(nb, assignment)
        rules = {ex.name: ex.banned for ex in assignment.exercises}
        result.banned = check_banned(extraction, rules, {ex.name: ex.defines for ex in assignment.exercises})
        sandbox = sandbox_factory(_statements(extraction), limits, parts=assignment.parts)
        sandbox.start()  # imports torch in parallel with our own pytest/hypothesis/torch imports
        from .proxy import Student

        plugin = ScorePlugin(Student(sandbox, extraction), result.banned, device=device)
    result.environment = _environment() | {"device": device}
    try:
        code = _run_suite(slug, plugin, suite_args or [])
    finally:
        if sandbox is not None:
            sandbox.close()
    if sandbox is not None and sandbox.failure:
        raise RuntimeError(sandbox.failure)
    if plugin.collection_errors or code in (3, 4):  # pytest's INTERNAL_ERROR, USAGE_ERROR
        raise RuntimeError("the hidden suite could not run: " + "; ".join(plugin.collection_errors or [str(code)]))
    if len(plugin.records) != plugin.collected or not plugin.collected:
        raise RuntimeError(f"the hidden suite ran {len(plugin.records)} of {plugin.collected} tests")
    result.tests = sorted(plugin.records.values(), key=lambda r: _exercise_order(assignment, r))
    if plugin.not_run_here:
        result.warnings.append(f"not graded on {device} (left out of the maximum): " + ", ".join(plugin.not_run_here))
    if sandbox is not None:
        # Not warnings: a failed definition only matters if a graded function needs it, and then that
        # test's message says so. Kept in the record for the course staff.
        result.extraction["load_errors"] = [f"cell {e['cell']}, line {e['line']}: {', '.join(e['names'])}: "
                                            f"{e['type']}: {e['message'][:200]}" for e in sandbox.load_errors]
        result.isolation = sandbox.isolation() | {"worker_restarts": sandbox.restarts}
        result.student_calls = plugin._student.calls
    result.isolation["protected_paths"] = len(protected)
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _run_suite(slug: str, plugin: ScorePlugin, extra: list[str]) -> int:
    import pytest
    from hypothesis import configuration

    _register(plugin, pytest)
    suite = Path(importlib.import_module(f"autograder.suites.{slug}").__file__).parent
    args = [str(suite), "-q", "-p", "no:cacheprovider", "--assert=plain", "-c", str(suite.parent / "pytest.ini"),
            "--rootdir", str(suite), "--no-header", "-W", "ignore", *extra]
    cwd = os.getcwd()
    # The environment must not change which tests run or how (PYTEST_ADDOPTS="-k softmax" would), and
    # hypothesis must not write its cache into the submission's folder.
    saved = {k: os.environ.pop(k) for k in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS") if k in os.environ}
    saved_autoload = os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    home = configuration.storage_directory()
    try:
        with tempfile.TemporaryDirectory(prefix="llmkit-hypothesis-") as scratch:
            configuration.set_hypothesis_home_dir(scratch)
            with contextlib.redirect_stdout(io.StringIO()):  # pytest's own console output is not the report
                return pytest.main(args, plugins=[plugin])
    finally:
        configuration.set_hypothesis_home_dir(str(home))
        os.chdir(cwd)
        os.environ.update(saved)
        if saved_autoload is None:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = saved_autoload


def _register(plugin: ScorePlugin, pytest) -> None:
    """Attach the pytest decorations late (pytest is imported only once the worker is starting)."""
    cls = type(plugin)
    if not hasattr(cls, "_decorated"):
        cls.student = pytest.fixture(name="student")(cls.student)
        cls.device = pytest.fixture(name="device")(cls.device)
        cls.pytest_runtest_makereport = pytest.hookimpl(hookwrapper=True)(cls.pytest_runtest_makereport)
        cls._decorated = True


def _exercise_order(assignment: Assignment, record: TestRecord):
    names = [ex.name for ex in assignment.exercises]
    return (names.index(record.exercise) if record.exercise in names else len(names), record.id)


# Plotting and display are never graded; importing them in the worker costs a second or more per grade
# (and may fail once privileges are dropped), so those imports are not run there.
_DISPLAY_ONLY = ("matplotlib", "seaborn", "plotly", "IPython", "ipywidgets")


def _statements(extraction: Extraction) -> list[dict]:
    return [{"source": s.source, "cell": s.cell, "line": s.line, "names": s.names} for s in extraction.statements
            if not _display_import(s.source)]


def _display_import(source: str) -> bool:
    import ast

    try:
        node = ast.parse(source).body[0]
    except (SyntaxError, IndexError):
        return False
    if isinstance(node, ast.Import):
        return all(a.name.split(".")[0] in _DISPLAY_ONLY for a in node.names)
    return isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _DISPLAY_ONLY


def _environment() -> dict:
    import hypothesis
    import pytest
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "hypothesis": hypothesis.__version__,
            "pytest": pytest.__version__, "llmkit": __version__, "machine": platform.machine()}
