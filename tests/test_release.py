"""``llmkit release``: the student repository it builds, what must never be in it, and authoring errors.

Most tests share one release built into a temporary folder from the real ``assignments/`` folder;
authoring errors use small copies of the real week 2 folder with one mistake each.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbgrader.utils import compute_checksum

from autograder import checksums
from autograder.assignments import all_assignments
from autograder.release import BEGIN, END, ReleaseError, build_release, find_leaks, solution_lines, trusted_secrets
from autograder.student.notebook import read_notebook

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "assignments"
SLUG = "w02_attention"
NB_NAME = "attention.ipynb"
SOURCE_NB = ASSIGNMENTS / SLUG / NB_NAME
COMMITTED = ROOT / "release"
EXERCISES = ("softmax", "causal_mask", "scaled_dot_product_attention", "multi_head_attention")
NOT_RELEASE_CONTENT = {"__pycache__", ".ipynb_checkpoints"}  # caches a local run may leave behind
WEEKS = {slug: a.notebook for slug, a in all_assignments().items() if (ASSIGNMENTS / slug).is_dir()}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release") / "student-repo"
    assert build_release(ASSIGNMENTS, out) == sorted(WEEKS)
    return out


@pytest.fixture(scope="module")
def source_nb():
    return nbformat.read(SOURCE_NB, as_version=4)


@pytest.fixture(scope="module")
def released_nb(release):
    return nbformat.read(release / SLUG / NB_NAME, as_version=4)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not NOT_RELEASE_CONTENT & set(p.relative_to(folder).parts)
    }


def _by_grade_id(nb) -> dict[str, tuple[int, object]]:
    return {c.metadata["nbgrader"]["grade_id"]: (i, c) for i, c in enumerate(nb.cells, start=1)
            if "grade_id" in c.metadata.get("nbgrader", {})}


def _strings(value):
    """Every string anywhere in a JSON value (cell sources, outputs, metadata, attachments)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)


def _all_release_lines(release: Path) -> dict[str, set[str]]:
    """file -> stripped lines, notebooks read as JSON so outputs and metadata are searched too."""
    out = {}
    for path in release.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".ipynb":
            text = "\n".join(_strings(json.loads(path.read_text())))
        else:
            text = path.read_text(errors="replace")
        out[path.relative_to(release).as_posix()] = {ln.strip() for ln in text.splitlines()}
    return out


# ---------------------------------------------------------------------------------------------
# What the release contains
# ---------------------------------------------------------------------------------------------


def test_release_has_the_student_repository_files(release):
    expected = {
        "autograder/__init__.py", "README.md", "requirements.txt", "pyproject.toml", ".gitignore",
        ".github/workflows/check.yml",
    } | {f"autograder/student/{p.name}" for p in (ROOT / "autograder" / "student").glob("*.py")}
    for slug, notebook in WEEKS.items():  # each week: its notebook, public tests and data files
        expected |= {f"{slug}/{notebook}", f"{slug}/public_tests.py"}
        expected |= {p.relative_to(ASSIGNMENTS).as_posix() for p in (ASSIGNMENTS / slug / "data").rglob("*")
                     if p.is_file()}
    assert {"autograder/student/notebook.py", "autograder/student/check.py", "autograder/student/cli.py",
            "autograder/student/public.py", "autograder/student/__init__.py"} <= expected
    assert set(_files(release)) == expected
    for py in (ROOT / "autograder" / "student").glob("*.py"):
        assert (release / "autograder" / "student" / py.name).read_bytes() == py.read_bytes()
    assert (release / SLUG / "public_tests.py").read_bytes() == (ASSIGNMENTS / SLUG / "public_tests.py").read_bytes()
    for path in release.rglob("*"):
        if path.is_file() and path.suffix not in (".pt", ".npy", ".npz", ".png"):  # binary data files
            leftover = re.findall(r"(?<!\$)\{\{[A-Z_]+\}\}", path.read_text())  # ${{ ... }} is GitHub's own syntax
            assert not leftover, f"{path}: template placeholder {leftover[0]} was not filled in"


def test_repository_files_are_usable(release):
    requirements = (release / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in [ln.strip() for ln in requirements]
    project = tomllib.loads((release / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["llmkit"] == "autograder.student.cli:main"
    readme = (release / "README.md").read_text()
    assert f"`{SLUG}/{NB_NAME}`" in readme and "Week 2: Attention" in readme
    ignored = (release / ".gitignore").read_text().splitlines()
    assert "__pycache__/" in ignored and ".ipynb_checkpoints/" in ignored


def test_workflow_is_valid_and_runs_the_public_checks(release):
    text = (release / ".github" / "workflows" / "check.yml").read_text()
    assert "\t" not in text
    try:
        import yaml
    except ImportError:  # minimal structural checks without a YAML parser
        for key in ("name:", "on:", "jobs:", "runs-on:", "steps:", "uses: actions/checkout"):
            assert key in text
        assert f"llmkit check {SLUG}/{NB_NAME}" in text
        return
    data = yaml.safe_load(text)
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads the bare key `on` as True
    assert "push" in triggers
    steps = data["jobs"]["check"]["steps"]
    assert any(str(s.get("uses", "")).startswith("actions/checkout") for s in steps)
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "torch==2.13.0" in runs
    assert f"llmkit check {SLUG}/{NB_NAME}" in runs
    assert "{{" not in runs


def test_solution_cells_become_nbgrader_stubs(source_nb, released_nb):
    src, rel = _by_grade_id(source_nb), _by_grade_id(released_nb)
    assert len(released_nb.cells) == len(source_nb.cells)
    for gid in EXERCISES:
        _, original = src[gid]
        _, cell = rel[gid]
        assert BEGIN not in cell.source and END not in cell.source
        assert "raise NotImplementedError()" in cell.source
        assert "# YOUR CODE HERE" in cell.source
        # everything outside the solution regions (imports, signature, docstring) is kept verbatim
        outside, inside = [], False
        for line in original.source.splitlines():
            if BEGIN in line:
                inside = True
            elif END in line:
                inside = False
            elif not inside:
                outside.append(line)
        kept = [ln for ln in cell.source.splitlines() if ln.strip() not in ("# YOUR CODE HERE", "raise NotImplementedError()")]
        assert kept == outside, gid
    assert 'def softmax(x, dim=-1):\n    """Numerically stable softmax' in rel["softmax"][1].source
    mha = rel["multi_head_attention"][1].source
    assert mha.count("raise NotImplementedError()") == 2  # one stub per region: __init__ and forward
    assert "def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):" in mha
    assert "def forward(self, x):" in mha
    answer = rel["written_self_attention"][1]
    assert answer.cell_type == "markdown" and answer.source.strip() == "YOUR ANSWER HERE"
    # cells that are not solutions are unchanged
    for (i, a), b in zip(enumerate(source_nb.cells), released_nb.cells):
        if not a.metadata.get("nbgrader", {}).get("solution"):
            assert a.source == b.source, f"cell {i + 1} changed"


def test_released_notebook_has_no_outputs_and_locked_cells_are_checksummed(released_nb):
    code = [c for c in released_nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None
    locked = [c for c in released_nb.cells if c.metadata.get("nbgrader", {}).get("locked")]
    assert len(locked) > 10
    for cell in locked:
        assert cell.metadata["nbgrader"]["checksum"] == compute_checksum(cell)
        assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False


def test_outputs_and_execution_counts_of_an_executed_source_are_removed(tmp_path):
    """An instructor who saves the notebook after running it must not ship the outputs (they show answers)."""
    nb = nbformat.read(SOURCE_NB, as_version=4)
    leaked = "x_max = x.amax(dim=dim, keepdim=True)"  # a solution line, printed by a demo
    for n, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = n + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{leaked}\n")]
    nb.cells[1].outputs.append(nbformat.v4.new_output(
        "display_data", data={"text/plain": leaked, "image/png": "iVBORw0KGgo="}))
    source = _copy_assignment(tmp_path, nb)
    out = tmp_path / "out"
    build_release(source, out)
    released = json.loads((out / SLUG / NB_NAME).read_text())
    for cell in released["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    assert leaked not in (out / SLUG / NB_NAME).read_text()


# ---------------------------------------------------------------------------------------------
# Nothing trusted leaks
# ---------------------------------------------------------------------------------------------


def test_secrets_are_not_empty(source_nb):
    """Guards the leak tests below against passing vacuously."""
    secrets = trusted_secrets([source_nb])
    sol = solution_lines(source_nb)
    assert "x_max = x.amax(dim=dim, keepdim=True)" in sol
    assert "return torch.tril(torch.ones(T, T, dtype=torch.bool))" in sol
    assert any(ln.startswith("Self-attention lets every position") for ln in sol)  # the written answer
    assert "raise NotImplementedError()" not in sol and "def softmax(x, dim=-1):" not in sol
    assert len(secrets["solution"]) >= 20
    assert len(secrets["reference"]) >= 10
    assert len(secrets["hidden test"]) >= 20


def _every_week():
    return [nbformat.read(ASSIGNMENTS / slug / name, as_version=4) for slug, name in WEEKS.items()]


def test_no_solution_reference_or_hidden_test_line_in_the_release(release):
    every_week = _every_week()
    assert len(every_week) >= 2
    assert find_leaks(release, trusted_secrets(every_week)) == []
    # and again independently of find_leaks: every string of the notebook JSON, not only cell sources
    secrets = trusted_secrets(every_week)
    for name, lines in _all_release_lines(release).items():
        for kind, secret in secrets.items():
            assert not lines & secret, f"{name} contains a {kind} line: {sorted(lines & secret)[0]!r}"


def test_no_hidden_suite_or_reference_files_in_the_release(release):
    names = [p.relative_to(release) for p in release.rglob("*")]
    assert not [p for p in names if p.name.startswith("test_") and p.suffix == ".py"]
    assert not [p for p in names if "reference" in p.parts or "suites" in p.parts]
    suite_files = {p.name for p in (ROOT / "autograder" / "suites").rglob("*") if p.is_file()}
    assert not {p.name for p in names} & (suite_files - {"__init__.py"})


def test_the_leak_detector_finds_a_planted_solution_line(release, source_nb, tmp_path):
    copy_ = tmp_path / "copy"
    shutil.copytree(release, copy_)
    secrets = trusted_secrets(_every_week())
    planted = "    x_max = x.amax(dim=dim, keepdim=True)\n"
    assert planted.strip() in secrets["solution"]
    with open(copy_ / SLUG / "public_tests.py", "a") as fh:
        fh.write(planted)
    leaks = find_leaks(copy_, secrets)
    assert len(leaks) == 1 and leaks[0].startswith(f"{SLUG}/public_tests.py: solution line")


def test_the_leak_detector_finds_a_planted_reference_line_and_one_inside_a_notebook(release, source_nb, tmp_path):
    copy_ = tmp_path / "copy"
    shutil.copytree(release, copy_)
    secrets = trusted_secrets(_every_week())
    reference_line = sorted(secrets["reference"])[0]
    (copy_ / "README.md").write_text((copy_ / "README.md").read_text() + "\n" + reference_line + "\n")
    nb = nbformat.read(copy_ / SLUG / NB_NAME, as_version=4)
    nb.cells[1].source += '\nprint("x")\nreturn torch.tril(torch.ones(T, T, dtype=torch.bool))'
    nbformat.write(nb, copy_ / SLUG / NB_NAME)
    leaks = find_leaks(copy_, secrets)
    assert any(leak.startswith("README.md: reference line") for leak in leaks), leaks
    assert any(leak.startswith(f"{SLUG}/{NB_NAME}: solution line") for leak in leaks), leaks


def test_a_line_one_week_publishes_is_not_a_secret_of_another():
    """A later week keeps its pasted week-3 model inside a solution region; the lines week 3's stub
    shows (``class FeedForward(nn.Module):``) stay public, while a line no notebook shows stays secret."""
    def notebook(cells):
        nb = nbformat.v4.new_notebook()
        for source, solution in cells:
            cell = nbformat.v4.new_code_cell(source)
            cell.metadata["nbgrader"] = {"solution": solution, "grade_id": f"c{len(nb.cells)}", "locked": not solution,
                                         "schema_version": 3, "grade": False}
            nb.cells.append(cell)
        return nb

    published = notebook([("class FeedForward(nn.Module):\n    ### BEGIN SOLUTION\n    hidden_width = 4 * d\n"
                           "    ### END SOLUTION\n", True)])
    later = notebook([("### BEGIN SOLUTION\nclass FeedForward(nn.Module):\n    secret_width = 4 * d\n"
                       "### END SOLUTION\n", True)])
    secrets = trusted_secrets([published, later])["solution"]
    assert "class FeedForward(nn.Module):" not in secrets
    assert {"hidden_width = 4 * d", "secret_width = 4 * d"} <= secrets


def test_build_release_refuses_to_write_a_leaking_release(tmp_path):
    """A public test that quotes a solution line stops the release, and nothing is left behind."""
    source = _copy_assignment(tmp_path, nbformat.read(SOURCE_NB, as_version=4))
    with open(source / SLUG / "public_tests.py", "a") as fh:
        fh.write("\n# x_max = x.amax(dim=dim, keepdim=True)\n    x_max = x.amax(dim=dim, keepdim=True)\n")
    out = tmp_path / "out"
    with pytest.raises(ReleaseError, match="leak") as info:
        build_release(source, out)
    assert "public_tests.py" in str(info.value)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Reproducible, and the committed release/ is current
# ---------------------------------------------------------------------------------------------


def test_committed_release_folder_is_up_to_date(release):
    """Fails when an instructor edits assignments/ or the engine and forgets `llmkit release`."""
    built, committed = _files(release), _files(COMMITTED)
    assert sorted(built) == sorted(committed), "run `llmkit release` and commit release/"
    stale = [name for name in built if built[name] != committed[name]]
    assert stale == [], f"release/ is out of date ({', '.join(stale)}): run `llmkit release` and commit it"


def test_two_builds_are_byte_identical(release, tmp_path):
    again = tmp_path / "again"
    build_release(ASSIGNMENTS, again)
    assert _files(again) == _files(release)


def test_build_replaces_a_stale_output_folder(release, tmp_path):
    out = tmp_path / "out"
    (out / "old_week").mkdir(parents=True)
    (out / "old_week" / "solution.py").write_text("secret = 1\n")
    build_release(ASSIGNMENTS, out)
    assert _files(out) == _files(release)


# ---------------------------------------------------------------------------------------------
# Authoring errors
# ---------------------------------------------------------------------------------------------


def _copy_assignment(tmp_path: Path, nb) -> Path:
    source = tmp_path / "src"
    (source / SLUG).mkdir(parents=True)
    shutil.copy(ASSIGNMENTS / SLUG / "public_tests.py", source / SLUG / "public_tests.py")
    nbformat.write(nb, source / SLUG / NB_NAME)
    return source


def _cell(nb, grade_id: str) -> tuple[int, object]:
    return _by_grade_id(nb)[grade_id]


def _line_of(source: str, needle: str) -> int:
    return next(i for i, ln in enumerate(source.splitlines(), start=1) if needle in ln)


def _begin_without_end(nb):
    i, cell = _cell(nb, "softmax")
    cell.source = cell.source.replace("    ### END SOLUTION", "")
    return f"cell {i} (softmax)", "is never closed"


def _nested_begin(nb):
    i, cell = _cell(nb, "softmax")
    cell.source = cell.source.replace("    exps = torch.exp", "    ### BEGIN SOLUTION\n    exps = torch.exp")
    return f"cell {i} (softmax), line {_line_of(cell.source, 'exps = torch.exp') - 1}", "nested"


def _end_without_begin(nb):
    i, cell = _cell(nb, "scaled_dot_product_attention")
    cell.source = cell.source.replace("    ### BEGIN SOLUTION\n", "")
    line = _line_of(cell.source, END)
    return f"cell {i} (scaled_dot_product_attention), line {line}", "without a matching"


def _region_in_unmarked_cell(nb):
    i, cell = next((i, c) for i, c in enumerate(nb.cells, start=1) if c.get("id") == "softmax-demo")
    assert "nbgrader" not in cell.metadata
    cell.source = "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\n" + cell.source
    return f"cell {i} (id softmax-demo)", "not marked as a solution cell"


def _solution_cell_without_region(nb):
    i, cell = _cell(nb, "causal_mask")
    cell.source = "\n".join(ln for ln in cell.source.splitlines() if BEGIN not in ln and END not in ln)
    return f"cell {i} (causal_mask)", "without a '### BEGIN SOLUTION'"


def _missing_exercise(nb):
    i, _ = _cell(nb, "softmax")
    del nb.cells[i - 1]
    return "grade_id 'softmax'", "no solution cell"


def _duplicate_grade_id(nb):
    i, cell = _cell(nb, "check_softmax")
    cell.metadata["nbgrader"]["grade_id"] = "softmax"
    return f"cell {i} (softmax)", "used twice"


AUTHORING_ERRORS = {
    "begin_without_end": _begin_without_end,
    "nested_begin": _nested_begin,
    "end_without_begin": _end_without_begin,
    "region_in_unmarked_cell": _region_in_unmarked_cell,
    "solution_cell_without_region": _solution_cell_without_region,
    "missing_exercise": _missing_exercise,
    "duplicate_grade_id": _duplicate_grade_id,
}


@pytest.mark.parametrize("mistake", sorted(AUTHORING_ERRORS))
def test_authoring_error_names_notebook_and_cell(mistake, tmp_path):
    nb = nbformat.read(SOURCE_NB, as_version=4)
    where, what = AUTHORING_ERRORS[mistake](nb)
    source = _copy_assignment(tmp_path, nb)
    out = tmp_path / "out"
    with pytest.raises(ReleaseError) as info:
        build_release(source, out)
    message = str(info.value)
    assert NB_NAME in message and where in message and what in message, message
    assert not out.exists() or not list(out.rglob("*.ipynb"))  # no half-written release


def test_corrupt_notebook_is_an_authoring_error(tmp_path):
    source = _copy_assignment(tmp_path, nbformat.read(SOURCE_NB, as_version=4))
    path = source / SLUG / NB_NAME
    path.write_text(path.read_text()[:5000])  # truncated mid-file: not JSON any more
    with pytest.raises(ReleaseError) as info:
        build_release(source, tmp_path / "out")
    assert NB_NAME in str(info.value) and "not a readable notebook" in str(info.value)


def test_source_without_assignments_is_an_error(tmp_path):
    (tmp_path / "w99_unknown").mkdir()
    with pytest.raises(ReleaseError, match=f"no assignment folders.*{SLUG}"):
        build_release(tmp_path, tmp_path / "out")


def test_cli_reports_an_authoring_error_without_a_traceback(tmp_path):
    nb = nbformat.read(SOURCE_NB, as_version=4)
    where, what = _begin_without_end(nb)
    source = _copy_assignment(tmp_path, nb)
    proc = subprocess.run(
        [sys.executable, "-m", "autograder.cli", "release", "--source", str(source), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "release failed" in proc.stderr and NB_NAME in proc.stderr and where in proc.stderr and what in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_failed_release_keeps_the_previous_release(release, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(release, out)
    nb = nbformat.read(SOURCE_NB, as_version=4)
    _begin_without_end(nb)
    with pytest.raises(ReleaseError):
        build_release(_copy_assignment(tmp_path, nb), out)
    assert _files(out) == _files(release)


# ---------------------------------------------------------------------------------------------
# Checksums of locked cells (nbgrader-compatible)
# ---------------------------------------------------------------------------------------------


def test_checksums_match_nbgrader(released_nb):
    checked = 0
    for cell in released_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if "checksum" not in meta:
            continue
        assert checksums.cell_checksum(cell) == compute_checksum(cell) == meta["checksum"]
        checked += 1
    kinds = {(m.get("locked"), m.get("solution"), m.get("grade"))
             for m in (c.metadata.get("nbgrader", {}) for c in released_nb.cells) if "checksum" in m}
    assert (True, False, False) in kinds  # locked text/check cells
    assert (False, True, False) in kinds  # exercise cells
    assert (False, True, True) in kinds  # the written answer: a grade cell, points in the hash
    assert checked >= 25


def test_unmodified_release_has_no_modified_locked_cells(release, released_nb):
    assert checksums.modified_locked_cells(released_nb) == []
    assert checksums.modified_locked_cells(read_notebook(release / SLUG / NB_NAME)) == []


def test_editing_a_locked_cell_is_flagged_but_editing_an_exercise_is_not(release):
    nb = read_notebook(release / SLUG / NB_NAME)  # the plain-JSON form the grader uses
    cells = {c["metadata"].get("nbgrader", {}).get("grade_id"): (i, c) for i, c in enumerate(nb["cells"], start=1)}
    i, check_cell = cells["check_softmax"]
    check_cell["source"] = 'print("all checks passed")'
    _, exercise = cells["softmax"]
    exercise["source"] = exercise["source"].replace("raise NotImplementedError()", "return x")
    _, answer = cells["written_self_attention"]
    answer["source"] = "Attention mixes values."
    assert checksums.modified_locked_cells(nb) == [f"locked cell {i} (check_softmax) was modified"]

