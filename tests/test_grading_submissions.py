"""End to end: grade example submissions with ``llmkit grade`` in a subprocess, as CI does.

Each case is a notebook laid out the way students receive and fill it: the instructor notebook with its
solutions stripped by nbgrader's ``ClearSolutions`` (stubs that raise ``NotImplementedError``), plus one
code cell holding the submission's code; later definitions override the stubs, as when a notebook runs
top to bottom. A few cases need another layout (a deleted exercise cell, a cell that does not parse).

Every notebook is graded once (a module-scoped cache), two at a time, and only the cases the selected
tests need. Each grade runs with the notebook's folder as working directory and with its own TMPDIR, so
the sandbox's working folders, and every process the submission starts, can be told apart from those of
other graders running on the same machine.

Expected scores are exact. Hidden suite, per exercise (tests and points):
    softmax 5          matches_reference 2, is_stable 2, neg_inf_entries 1
    causal_mask 3      values 2, dtype 1
    sdpa 10            no_mask 3, with_mask 3, fully_masked_rows 1, extreme_values 1, gradients 2
    MHA 10             matches_reference 4, gradients 2, rejects_indivisible_heads 3 x 1, is_causal 1
MHA's three rejects_indivisible_heads tests only build the module (the constructor must raise), so a
submission whose forward breaks still earns those 3 points unless the constructor breaks too, or the
grader stopped calling MultiHeadAttention altogether (after a time-out or two crashes).
"""

from __future__ import annotations

import base64
import concurrent.futures
import copy
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
ClearSolutions = pytest.importorskip("nbgrader.preprocessors").ClearSolutions

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "tests" / "submissions" / "w02_attention"
INSTRUCTOR_NOTEBOOK = ROOT / "assignments" / "w02_attention" / "attention.ipynb"
SLUG = "w02_attention"
IS_ROOT = os.getuid() == 0
NOBODY = 65534
GRADE_TIMEOUT_S = 300
PARALLEL_GRADES = 2
needs_root = pytest.mark.skipif(not IS_ROOT, reason="the worker drops to `nobody` and trusted files are hidden only "
                                                    "when the grader runs as root")

# -- the hidden suite's tests, by exercise ------------------------------------------------------------
SM_MATCH, SM_STABLE, SM_NEG_INF = (f"softmax::test_softmax_{t}" for t in ("matches_reference", "is_stable",
                                                                          "neg_inf_entries"))
CM_VALUES, CM_DTYPE = "causal_mask::test_causal_mask_values", "causal_mask::test_causal_mask_dtype"
SDPA_NO_MASK, SDPA_MASK, SDPA_FULLY_MASKED, SDPA_EXTREME, SDPA_GRAD = (
    f"scaled_dot_product_attention::test_sdpa_{t}"
    for t in ("no_mask", "with_mask", "fully_masked_rows", "extreme_values", "gradients"))
MHA_MATCH, MHA_GRAD, MHA_CAUSAL = (f"multi_head_attention::test_mha_{t}" for t in ("matches_reference", "gradients",
                                                                                   "is_causal"))
MHA_REJECTS = {f"multi_head_attention::test_mha_rejects_indivisible_heads[{p}]" for p in ("5-2", "6-4", "7-3")}

SOFTMAX = {SM_MATCH, SM_STABLE, SM_NEG_INF}
CAUSAL_MASK = {CM_VALUES, CM_DTYPE}
SDPA = {SDPA_NO_MASK, SDPA_MASK, SDPA_FULLY_MASKED, SDPA_EXTREME, SDPA_GRAD}
MHA_FORWARD = {MHA_MATCH, MHA_GRAD, MHA_CAUSAL}  # 7 points: everything that calls forward
MHA = MHA_FORWARD | MHA_REJECTS
ALL_TESTS = SOFTMAX | CAUSAL_MASK | SDPA | MHA
FULL = {"softmax": 5, "causal_mask": 3, "scaled_dot_product_attention": 10, "multi_head_attention": 10}
MAX_SCORE = 28


def scores(softmax=5, causal_mask=3, sdpa=10, mha=10) -> dict[str, int]:
    return {"softmax": softmax, "causal_mask": causal_mask, "scaled_dot_product_attention": sdpa,
            "multi_head_attention": mha}


# (per-exercise scores, the tests that fail) for each bug_*.py; each loses points only where its header says.
BUGS = {
    # causal_mask is the upper triangle: its values test fails (the dtype, bool, is right: 1/3 kept). MHA builds
    # its mask with it, so every forward-based MHA test fails (3/10 kept: the constructor-only tests).
    "bug_causal_upper": (scores(causal_mask=1, mha=3), {CM_VALUES} | MHA_FORWARD),
    # Only a query row whose mask is all False gives NaN: sdpa's fully-masked-rows test (1 point). MHA's causal
    # mask never has an empty row, and softmax is never fed an all -inf slice by the softmax tests.
    "bug_fully_masked_nan": (scores(sdpa=9), {SDPA_FULLY_MASKED}),
    # Heads interleaved instead of blocked: outputs and gradients are wrong (6 points); each position still
    # sees only the past (is_causal passes) and the constructor still rejects bad head counts.
    "bug_heads_wrong_order": (scores(mha=4), {MHA_MATCH, MHA_GRAD}),
    # The mask is applied inverted: every sdpa test that passes a mask fails (no_mask, 3 points, passes);
    # MHA masks through sdpa, so its forward-based tests fail too.
    "bug_mask_inverted": (scores(sdpa=3, mha=3), {SDPA_MASK, SDPA_FULLY_MASKED, SDPA_EXTREME, SDPA_GRAD} | MHA_FORWARD),
    # exp overflows for large inputs: softmax's stability test (2 points), and sdpa's extreme-values test
    # (1 point: scores in the thousands go through this softmax). Ordinary scores are fine elsewhere.
    "bug_naive_softmax": (scores(softmax=3, sdpa=9), {SM_STABLE, SDPA_EXTREME}),
    # No 1/sqrt(d_k): wrong weights in sdpa and MHA. Kept: sdpa's extreme-values test (1 point: with scores in
    # the thousands both versions are one-hot on the same key) and MHA's is_causal plus constructor tests (4).
    "bug_no_scaling": (scores(sdpa=1, mha=4), {SDPA_NO_MASK, SDPA_MASK, SDPA_FULLY_MASKED, SDPA_GRAD, MHA_MATCH,
                                               MHA_GRAD}),
}


# -- building notebooks ------------------------------------------------------------------------------
def _stub_notebook():
    """The released student notebook: the instructor's, solutions replaced by NotImplementedError stubs."""
    instructor = nbformat.read(INSTRUCTOR_NOTEBOOK, as_version=4)
    stub, _ = ClearSolutions().preprocess(copy.deepcopy(instructor), {})
    return stub


def _with_code(stub, code: str, drop_grade_ids: tuple[str, ...] = ()):
    nb = copy.deepcopy(stub)
    nb.cells = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") not in drop_grade_ids]
    nb.cells.append(nbformat.v4.new_code_cell(code))
    return nb


def _percent_cells(path: Path) -> list[str]:
    """A ``.py`` file split into cells at its ``# %%`` lines (the text before the first one is a header)."""
    parts = re.split(r"^# %%.*\n", path.read_text(), flags=re.MULTILINE)[1:]
    return [p.strip("\n") + "\n" for p in parts]


def _submission(name: str) -> str:
    return (SUBMISSIONS / f"{name}.py").read_text()


# -- processes ---------------------------------------------------------------------------------------
@dataclass
class Proc:
    pid: int
    uid: int
    comm: str
    argv: list[str]
    environ: bytes


def _processes() -> list[Proc]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                uid = int(re.search(r"^Uid:\s+(\d+)", fh.read(), re.MULTILINE).group(1))
            with open(f"/proc/{entry}/comm") as fh:
                comm = fh.read().strip()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    environ = fh.read()
            except OSError:  # another user's process, when not root
                environ = b""
        except (OSError, AttributeError):
            continue  # gone meanwhile
        found.append(Proc(int(entry), uid, comm, argv, environ))
    return found


def _under(p: Proc, case_tmp: Path) -> bool:
    """Whether ``p`` was started under the grade whose TMPDIR is ``case_tmp``: the grader has that TMPDIR, the
    worker (and all it starts) a HOME and TMPDIR inside it."""
    folder = str(case_tmp).encode()
    for entry in p.environ.split(b"\0"):
        name, _, value = entry.partition(b"=")
        if name in (b"TMPDIR", b"HOME") and (value == folder or value.startswith(folder + b"/")):
            return True
    return False


def _started_by(case_tmp: Path) -> list[Proc]:
    return [p for p in _processes() if _under(p, case_tmp) and p.pid != os.getpid()]


def _hostile_markers(p: Proc) -> bool:
    """The processes hostile_fork_and_print.py starts: `sleep 301` and a Python named hostile-orphan."""
    return p.argv[:2] == ["sleep", "301"] or p.comm == "hostile-orphan"


# -- grading -----------------------------------------------------------------------------------------
@dataclass
class Case:
    key: str
    build: object  # (folder) -> notebook path
    slug: str = SLUG
    args: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)
    shared_tmp: bool = False  # TMPDIR is a world-writable folder and --out lies inside it (see fake_result)
    watch: bool = False  # record the processes the grade starts while it runs
    notebook_of: str | None = None  # grade the very notebook file of another case


@dataclass
class Graded:
    case: Case
    rc: int
    stdout: str
    stderr: str
    folder: Path
    notebook: Path
    out: Path
    tmp: Path
    wall_s: float
    seen: list[Proc]  # processes of this grade seen while it ran (watch=True only)
    left: list[Proc]  # processes of this grade still alive once the grader exited

    @property
    def result(self) -> dict:
        return json.loads((self.out / "result.json").read_text())

    def scores(self) -> dict[str, int]:
        return {e["name"]: e["score"] for e in self.result["exercises"]}

    def failed(self) -> set[str]:
        return {t["id"] for t in self.result["tests"] if t["status"] != "pass"}

    def messages(self, ids) -> dict[str, str]:
        return {t["id"]: t["message"] for t in self.result["tests"] if t["id"] in set(ids)}

    def classroom(self) -> dict:
        return json.loads(base64.b64decode((self.out / "classroom.b64").read_text().strip()))


def _llmkit() -> list[str]:
    """The console script, as CI runs it (``python -m`` would put the working directory first on sys.path)."""
    script = Path(sys.executable).with_name("llmkit")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "autograder.cli"]


def _cases(stub) -> dict[str, Case]:
    def release(name, drop=()):
        def build(folder):
            nbformat.write(_with_code(stub, _submission(name), drop), folder / "attention.ipynb")
            return folder / "attention.ipynb"
        return build

    def solution(folder):
        shutil.copy(INSTRUCTOR_NOTEBOOK, folder / "attention.ipynb")
        return folder / "attention.ipynb"

    def untouched(folder):
        nbformat.write(stub, folder / "attention.ipynb")
        return folder / "attention.ipynb"

    def three_cells(folder):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in _percent_cells(SUBMISSIONS / "hostile_syntax_error.py")]
        nbformat.write(nb, folder / "attention.ipynb")
        return folder / "attention.ipynb"

    def corrupt(folder):
        text = nbformat.writes(stub)
        (folder / "attention.ipynb").write_text(text[: len(text) // 2])  # truncated mid-way
        return folder / "attention.ipynb"

    def missing(folder):
        return folder / "nowhere" / "attention.ipynb"

    cases = [
        Case("solution", solution), Case("stub", untouched),
        Case("correct_alternative", release("correct_alternative")),
        *[Case(name, release(name)) for name in BUGS],
        Case("bug_no_scaling#again", None, notebook_of="bug_no_scaling"),
        Case("hostile_infinite_loop", release("hostile_infinite_loop"), args=("--call-timeout", "2")),
        Case("hostile_syntax_error", three_cells),
        Case("hostile_deleted_function", release("hostile_deleted_function", drop=("causal_mask",))),
        Case("hostile_imports_reference", release("hostile_imports_reference")),
        Case("hostile_sys_exit", release("hostile_sys_exit")),
        Case("hostile_os_exit", release("hostile_os_exit")),
        Case("hostile_fork_and_print", release("hostile_fork_and_print"), watch=True),
        Case("gaming_mha_always_raises", release("gaming_mha_always_raises")),
        Case("hostile_memory", release("hostile_memory")),
        Case("hostile_fake_result", release("hostile_fake_result"), shared_tmp=True),
        Case("corrupt", corrupt), Case("missing", missing),
        Case("unknown_assignment", untouched, slug="w99_no_such_week"),
        Case("stub+PYTEST_ADDOPTS", untouched, env={"PYTEST_ADDOPTS": "-x -k softmax"}),
    ]
    return {c.key: c for c in cases}


# The slowest first, so that two at a time finish together.
_ORDER = ["hostile_fake_result", "hostile_imports_reference", "bug_mask_inverted", "bug_no_scaling",
          "bug_no_scaling#again", "hostile_infinite_loop", "hostile_os_exit", "bug_naive_softmax"]


class Grader:
    """Builds every needed notebook first, then grades them ``PARALLEL_GRADES`` at a time; ``get`` waits."""

    def __init__(self, base: Path, tmp_base: Path, cases: dict[str, Case], needed: list[str]):
        self.base, self.tmp_base, self.cases = base, tmp_base, cases
        self.futures: dict[str, concurrent.futures.Future] = {}
        self.pool = concurrent.futures.ThreadPoolExecutor(PARALLEL_GRADES, thread_name_prefix="grade")
        self.notebooks: dict[str, tuple[Path, Path]] = {}
        for key in sorted(set(needed), key=lambda k: (_ORDER.index(k) if k in _ORDER else len(_ORDER), k)):
            self._submit(key)

    def _prepare(self, key: str) -> tuple[Path, Path]:
        if key not in self.notebooks:
            case = self.cases[key]
            if case.notebook_of:
                self.notebooks[key] = self._prepare(case.notebook_of)
            else:
                folder = self.base / re.sub(r"[^\w.-]", "_", key)
                folder.mkdir()
                self.notebooks[key] = (folder, case.build(folder))
        return self.notebooks[key]

    def _submit(self, key: str) -> None:
        if key not in self.futures:
            folder, notebook = self._prepare(key)
            self.futures[key] = self.pool.submit(self._grade, self.cases[key], folder, notebook)

    def get(self, key: str) -> Graded:
        self._submit(key)
        return self.futures[key].result()

    def done(self) -> list[Graded]:
        return [f.result() for f in self.futures.values() if f.done() and not f.exception()]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _grade(self, case: Case, folder: Path, notebook: Path) -> Graded:
        name = re.sub(r"[^\w.-]", "_", case.key)
        tmp = self.tmp_base / name
        tmp.mkdir()
        tmp.chmod(0o1777 if case.shared_tmp else 0o755)
        out = tmp / "out" if case.shared_tmp else folder / f"out-{name}"
        if case.shared_tmp:  # the stand-in for a file only root may write (see hostile_fake_result.py)
            (tmp / "llmkit-victim.txt").write_text("precious\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HYPOTHESIS_"))}
        env.update(TMPDIR=str(tmp), **case.env)
        cmd = [*_llmkit(), "grade", str(notebook), "-a", case.slug, "--out", str(out), "--format", "json", *case.args]
        seen: dict[int, Proc] = {}
        started = time.monotonic()
        with open(tmp.parent / f"{name}.stdout", "w+") as so, open(tmp.parent / f"{name}.stderr", "w+") as se:
            proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=so, stderr=se, start_new_session=True)
            try:
                while proc.poll() is None:
                    if time.monotonic() - started > GRADE_TIMEOUT_S:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        raise AssertionError(f"grading {case.key} did not finish in {GRADE_TIMEOUT_S} s")
                    if case.watch:
                        seen.update((p.pid, p) for p in _started_by(tmp))
                    time.sleep(0.1 if case.watch else 0.2)
            finally:
                wall = time.monotonic() - started
                time.sleep(0.2)  # let the kernel re-parent and reap what the grader killed last
                left = _started_by(tmp)
                for p in left:  # never leave them behind, whatever the assertions later say
                    try:
                        os.kill(p.pid, signal.SIGKILL)
                    except OSError:
                        pass
            so.seek(0)
            se.seek(0)
            stdout, stderr = so.read(), se.read()
        return Graded(case, proc.returncode, stdout, stderr, folder, notebook, out, tmp, wall, list(seen.values()),
                      left)


def _needed(session) -> list[str]:
    keys = []
    for item in session.items:
        if getattr(item, "module", None) is not sys.modules[__name__]:
            continue
        if any(m.args and m.args[0] is True for m in item.iter_markers("skipif")):
            continue
        keys += getattr(item.function, "grades", ())
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "case" in params:
            keys.append(params["case"])
    return keys


def uses(*keys):
    """Declare the graded cases a test reads, so the fixture can grade them ahead, in parallel."""
    def mark(fn):
        fn.grades = keys
        return fn
    return mark


@pytest.fixture(scope="module")
def grader(request, tmp_path_factory):
    # TMPDIRs live outside pytest's basetemp: that is private to root (0700), and the sandbox's user must be
    # able to reach its own working folder by absolute path, as it can under /tmp.
    tmp_base = Path(tempfile.mkdtemp(prefix="llmkit-grading-test-"))
    tmp_base.chmod(0o755)
    g = Grader(tmp_path_factory.mktemp("graded"), tmp_base, _cases(_stub_notebook()), _needed(request.session))
    yield g
    g.close()
    shutil.rmtree(tmp_base, ignore_errors=True)


# -- checks every completed grade must pass ------------------------------------------------------------
PATH_LIKE = re.compile(r"(/(work|tmp|usr|home|root|opt|site-packages)/|\.py\b|autograder)")


def check_graded(g: Graded, status: str = "completed", grader_errors: frozenset = frozenset()) -> dict:
    """Exit 0, printed JSON == result.json, complete and consistent, no traceback, no "grader error" (but in
    ``grader_errors``), no workflow command, nothing left running. Returns result.json."""
    assert g.rc == 0, f"{g.case.key}: exit code {g.rc}\n{g.stderr[-3000:]}"
    data = g.result
    assert json.loads(g.stdout) == data, "the JSON printed differs from result.json"
    assert data["schema"] == "llmkit/result/v1" and data["assignment"] == SLUG
    assert data["status"] == status
    assert data["max_score"] == MAX_SCORE and {t["id"] for t in data["tests"]} == ALL_TESTS
    assert data["score"] == sum(t["points"] for t in data["tests"]) == sum(e["score"] for e in data["exercises"])
    assert {e["name"]: e["max_score"] for e in data["exercises"]} == FULL
    for t in data["tests"]:
        assert (t["status"] == "pass") == (t["points"] == t["max_points"]), t
        assert "Traceback" not in t["message"], t
        assert ("grader error" in t["message"]) == (t["id"] in grader_errors), t
    for stream in (g.stdout, g.stderr, (g.out / "summary.md").read_text(), (g.out / "classroom.b64").read_text()):
        assert not re.search(r"^\s*::", stream, re.MULTILINE), "a line of the grader's output starts a workflow command"
    assert (g.out / "summary.md").read_text().startswith(f"## {SLUG}: {data['score']} / {MAX_SCORE} points")
    assert not g.left, f"processes of this grade still running after it ended: {g.left}"
    return data


def check_scores(g: Graded, expected: dict[str, int], failing: set[str], grader_errors=frozenset()) -> dict:
    data = check_graded(g, grader_errors=grader_errors)
    assert g.scores() == expected, g.messages(g.failed())
    assert g.failed() == failing, g.messages(g.failed() ^ failing)
    assert data["score"] == sum(expected.values())
    return data


# -- reference points ----------------------------------------------------------------------------------
@uses("solution")
def test_instructor_solution_gets_full_marks(grader):
    g = grader.get("solution")
    data = check_scores(g, FULL, set())
    assert data["score"] == 28 and not data["warnings"] and not data["extraction"]["syntax_errors"]
    assert data["manual"][0]["answered"] is True


@uses("stub")
def test_untouched_stub_scores_zero_with_not_implemented_messages(grader):
    g = grader.get("stub")
    data = check_scores(g, scores(0, 0, 0, 0), ALL_TESTS)
    for t in data["tests"]:
        assert "is not implemented yet" in t["message"], t
        assert not PATH_LIKE.search(t["message"]), f"a grader path in a message: {t['message']}"
    assert data["manual"][0]["answered"] is False


@uses("correct_alternative")
def test_correct_alternative_gets_full_marks(grader):
    check_scores(grader.get("correct_alternative"), FULL, set())


@pytest.mark.parametrize("case", sorted(BUGS))
def test_bug_loses_points_only_where_its_header_says(grader, case):
    expected, failing = BUGS[case]
    data = check_scores(grader.get(case), expected, failing)
    assert all(t["status"] == "fail" for t in data["tests"] if t["id"] in failing)  # a fault, never "error"


# -- hostile submissions -------------------------------------------------------------------------------
@uses("hostile_infinite_loop")
def test_infinite_loop_is_stopped_by_the_time_limit(grader):
    g = grader.get("hostile_infinite_loop")
    # causal_mask times out; MHA's first test times out inside forward, and MHA is then not called again.
    check_scores(g, scores(causal_mask=0, mha=0), CAUSAL_MASK | MHA)
    for test_id, message in g.messages(CAUSAL_MASK | MHA).items():
        assert "timed out after 2 s" in message, (test_id, message)
    assert g.result["isolation"]["worker_restarts"] == 2  # one time-out for causal_mask, one for MHA
    assert g.wall_s < 120


@uses("hostile_syntax_error")
def test_syntax_error_costs_only_the_cell_that_does_not_parse(grader):
    g = grader.get("hostile_syntax_error")
    # cell 2 defines only scaled_dot_product_attention; cell 3's MHA does not call it, so keeps its 10 points.
    data = check_scores(g, scores(sdpa=0), SDPA)
    cell = _percent_cells(SUBMISSIONS / "hostile_syntax_error.py")[1]
    line = next(i for i, text in enumerate(cell.splitlines(), 1) if "SYNTAX ERROR" in text)
    where = f"cell 2, line {line}"
    for test_id, message in g.messages(SDPA).items():
        assert "`scaled_dot_product_attention` is not defined" in message and where in message, (test_id, message)
        assert "do not parse" in message
    errors = data["extraction"]["syntax_errors"]
    assert len(errors) == 1 and where in errors[0], errors
    assert any(where in w for w in data["warnings"])


@uses("hostile_deleted_function")
def test_deleted_function_is_reported_as_not_defined(grader):
    g = grader.get("hostile_deleted_function")
    check_scores(g, scores(causal_mask=0, mha=3), CAUSAL_MASK | MHA_FORWARD)
    for test_id, message in g.messages(CAUSAL_MASK).items():
        assert message.startswith("`causal_mask` is not defined in your notebook"), (test_id, message)
    for test_id, message in g.messages(MHA_FORWARD).items():
        assert "raised NameError: name 'causal_mask' is not defined" in message, (test_id, message)


@needs_root
@uses("hostile_imports_reference")
def test_reference_can_be_neither_imported_nor_read(grader):
    g = grader.get("hostile_imports_reference")
    check_scores(g, scores(0, 0, 0, 0), ALL_TESTS)
    for test_id, message in g.messages(SOFTMAX | SDPA).items():
        assert "raised ImportError: 'reference' is not available to submissions" in message, (test_id, message)
    for test_id, message in g.messages(CAUSAL_MASK | MHA_FORWARD).items():  # read the file / bypass the blocker
        assert "raised PermissionError" in message, (test_id, message)
    for test_id, message in g.messages(MHA_REJECTS).items():
        assert "raised PermissionError" in message, (test_id, message)  # a valid configuration fails too


@uses("hostile_sys_exit")
def test_sys_exit_is_a_failed_call_not_the_end_of_grading(grader):
    g = grader.get("hostile_sys_exit")
    # softmax, and sdpa and MHA's forward through it, fail; causal_mask and MHA's constructor tests are untouched.
    check_scores(g, scores(softmax=0, sdpa=0, mha=3), SOFTMAX | SDPA | MHA_FORWARD)
    for test_id, message in g.messages(SOFTMAX | SDPA | MHA_FORWARD).items():
        assert "tried to stop the program (SystemExit)" in message, (test_id, message)
    assert g.result["isolation"]["worker_restarts"] == 0  # SystemExit is caught: the worker lives on


@uses("hostile_os_exit")
def test_os_exit_is_graded_as_a_crash_and_the_worker_restarts(grader):
    g = grader.get("hostile_os_exit")
    check_scores(g, scores(causal_mask=0, mha=0), CAUSAL_MASK | MHA)
    messages = g.messages(CAUSAL_MASK | MHA)
    for test_id in CAUSAL_MASK | {MHA_MATCH, MHA_GRAD}:  # each crashes the worker (MHA's forward calls causal_mask)
        assert "the worker exited with code 3" in messages[test_id], (test_id, messages[test_id])
    for test_id in MHA_REJECTS | {MHA_CAUSAL}:  # after two crashes MultiHeadAttention is not called again
        assert "was not called again: it crashed the worker twice" in messages[test_id], (test_id, messages[test_id])
    assert g.result["isolation"]["worker_restarts"] == 4


@uses("hostile_fork_and_print")
def test_spawned_processes_and_printed_workflow_commands_do_not_survive(grader):
    g = grader.get("hostile_fork_and_print")
    # The first softmax call spawns, prints, then fails writing 100 MB (16 MB file limit): that one test is lost.
    # (Hypothesis sees a flaky failure; it is still the student's, see
    # test_student_code_that_fails_only_once_is_a_student_fault.)
    check_scores(g, scores(softmax=3), {SM_MATCH})
    assert "File too large" in g.messages({SM_MATCH})[SM_MATCH]
    # The submission did run its attack: both processes were seen alive during grading, as nobody when root.
    hostile = [p for p in g.seen if _hostile_markers(p)]
    assert {p.comm for p in hostile} >= {"sleep", "hostile-orphan"}, [(p.comm, p.argv) for p in g.seen]
    if IS_ROOT:
        assert {p.uid for p in hostile} == {NOBODY}
    # ...and nothing of it is left: not by environment (check_graded), not by name, not as nobody.
    leftovers = [p for p in _processes() if _hostile_markers(p) or (p.uid == NOBODY and _under(p, g.tmp))]
    assert not leftovers, leftovers
    assert "::error::fake" not in g.stdout + g.stderr and "set-output" not in g.stdout + g.stderr
    assert not (g.out / "big.bin").exists()


@uses("hostile_memory")
def test_memory_hog_gets_a_memory_error(grader):
    g = grader.get("hostile_memory")
    check_scores(g, scores(causal_mask=0, mha=3), CAUSAL_MASK | MHA_FORWARD)
    for test_id, message in g.messages(CAUSAL_MASK | MHA_FORWARD).items():
        assert "raised MemoryError" in message, (test_id, message)


@uses("gaming_mha_always_raises")
def test_refusing_every_configuration_does_not_earn_the_rejection_points(grader):
    g = grader.get("gaming_mha_always_raises")
    check_scores(g, scores(softmax=0, causal_mask=0, sdpa=0, mha=0), ALL_TESTS)
    for test_id, message in g.messages(MHA_REJECTS).items():
        assert "raised ValueError" in message, (test_id, message)


@uses("hostile_fake_result")
def test_fake_results_do_not_replace_the_graders(grader):
    g = grader.get("hostile_fake_result")
    # Zeros everywhere: only causal_mask's dtype test (bool zeros) passes. A constant MHA output is not
    # causal attention: changing a token must change its own output.
    data = check_scores(g, scores(softmax=0, causal_mask=1, sdpa=0, mha=0), ALL_TESTS - {CM_DTYPE})
    assert data["score"] == 1 and data["submission_sha256"]
    assert "did not change its own output" in g.messages({MHA_CAUSAL})[MHA_CAUSAL]
    classroom = g.classroom()
    assert classroom["max_score"] == 28 and sum(t["score"] for t in classroom["tests"]) == 1
    assert "Score: 28" not in g.stdout and "set-output" not in g.stdout
    # The cheat did run: it wrote its full-marks result.json next to its sandbox folder (a world-writable TMPDIR).
    planted = g.tmp / "result.json"
    assert planted.is_file() and json.loads(planted.read_text())["score"] == 28, "hostile code did not run as expected"


# -- hardening: each of these was an engine bug once -------------------------------------------------------------
@needs_root
@uses("hostile_fake_result")
def test_grader_never_writes_through_links_planted_in_out(grader):
    g = grader.get("hostile_fake_result")
    assert (g.tmp / "llmkit-victim.txt").read_text() == "precious\n", "root wrote the summary through a planted link"
    for name in ("result.json", "summary.md", "classroom.b64"):
        assert not (g.out / name).is_symlink(), name
    st = g.out.stat()
    assert st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), "--out writable by others"


@uses("hostile_fork_and_print")
def test_student_code_that_fails_only_once_is_a_student_fault(grader):
    g = grader.get("hostile_fork_and_print")
    test = next(t for t in g.result["tests"] if t["id"] == SM_MATCH)
    assert test["status"] == "fail" and "OSError" in test["message"], test


@uses("stub+PYTEST_ADDOPTS")
def test_environment_cannot_change_which_hidden_tests_run(grader):
    g = grader.get("stub+PYTEST_ADDOPTS")
    check_scores(g, scores(0, 0, 0, 0), ALL_TESTS)


# -- determinism -------------------------------------------------------------------------------------------
def _without_timings(data: dict) -> dict:
    data = copy.deepcopy(data)
    data.pop("duration_s", None)
    for t in data["tests"]:
        t.pop("duration", None)
    return data


@uses("bug_no_scaling", "bug_no_scaling#again")
def test_scores_are_deterministic(grader):
    first, again = grader.get("bug_no_scaling"), grader.get("bug_no_scaling#again")
    check_graded(again)
    assert first.notebook == again.notebook and first.out != again.out
    def outcome(data):
        return data["score"], data["exercises"], [(t["id"], t["status"], t["points"]) for t in data["tests"]]

    def passed(data):
        return [t for t in _without_timings(data)["tests"] if t["status"] == "pass"]

    assert outcome(first.result) == outcome(again.result)
    assert passed(first.result) == passed(again.result)


@uses("bug_no_scaling", "bug_no_scaling#again")
def test_result_json_is_identical_except_durations(grader):
    first, again = grader.get("bug_no_scaling"), grader.get("bug_no_scaling#again")
    a, b = _without_timings(first.result), _without_timings(again.result)
    assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b.get(k)}


# -- notebooks that cannot be graded, and usage errors ---------------------------------------------------------
@pytest.mark.parametrize("case,says", [("corrupt", "is not valid notebook JSON"),
                                       ("missing", "nowhere/attention.ipynb")])
def test_unreadable_notebook_is_rejected_with_an_explanation(grader, case, says):
    g = grader.get(case)
    data = check_graded(g, status="rejected")
    assert data["score"] == 0 and data["max_score"] == 28
    assert len(data["warnings"]) == 1 and says in data["warnings"][0]
    for t in data["tests"]:
        assert t["status"] == "fail" and t["message"] == data["warnings"][0], t
    assert "could not be graded" in (g.out / "summary.md").read_text()


@uses("unknown_assignment")
def test_unknown_assignment_is_a_usage_error(grader):
    g = grader.get("unknown_assignment")
    assert g.rc == 2, (g.rc, g.stderr)
    assert "unknown assignment 'w99_no_such_week'" in g.stderr and SLUG in g.stderr
    assert "Traceback" not in g.stderr and g.stdout == ""
    assert not g.out.exists()


# -- output formats and side effects ----------------------------------------------------------------------
@pytest.mark.parametrize("case", ["solution", "bug_no_scaling", "corrupt"])
def test_classroom_b64_is_the_runner_format(grader, case):
    g = grader.get(case)
    data, classroom = g.result, g.classroom()
    assert set(classroom) == {"version", "status", "max_score", "tests"}
    assert classroom["version"] == 1 and classroom["max_score"] == 28
    assert classroom["status"] == ("pass" if data["score"] == 28 else "fail")
    assert len(classroom["tests"]) == len(data["tests"]) == 16
    for t, source in zip(classroom["tests"], data["tests"]):
        assert set(t) == {"name", "status", "score", "message", "line_no", "duration"}
        assert t["status"] in ("pass", "fail") and isinstance(t["line_no"], int) and isinstance(t["duration"], int)
        assert (t["score"], t["message"]) == (source["points"], source["message"])
        assert t["name"].startswith(source["exercise"] + ": ")
    assert sum(t["score"] for t in classroom["tests"]) == data["score"]


@uses("solution")
def test_grading_leaves_no_cache_folders_in_the_submission_folder(grader):
    graded = {g.case.key: g for g in grader.done()} | {"solution": grader.get("solution")}
    for g in graded.values():
        for name in (".hypothesis", ".pytest_cache", "__pycache__"):
            assert not (g.folder / name).exists(), f"{g.case.key}: grading created {name} in {g.folder}"
