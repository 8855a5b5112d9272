"""The student-side public checks: ``check("softmax")`` in a notebook and ``llmkit check notebook.ipynb``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.student import cli
from autograder.student.check import load_public_tests, run_public_tests

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "assignments" / "w02_attention"
NOTEBOOK = FOLDER / "attention.ipynb"
EXERCISES = ("softmax", "causal_mask", "scaled_dot_product_attention", "multi_head_attention")

SOFTMAX = """
import torch

def softmax(x, dim=-1):
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)
"""


def namespace(source: str) -> dict:
    names: dict = {"__name__": "student_notebook"}
    exec(compile(source, "<cell>", "exec"), names)
    return names


@pytest.fixture(scope="module")
def n_public() -> dict[str, int]:
    tests = load_public_tests(FOLDER)
    return {ex: sum(t.exercise == ex for t in tests) for ex in EXERCISES} | {"all": len(tests)}


def test_every_exercise_has_public_tests(n_public):
    assert all(n_public[ex] >= 2 for ex in EXERCISES)
    assert n_public["all"] == sum(n_public[ex] for ex in EXERCISES)  # no test for an unknown exercise


def test_a_correct_softmax_passes(n_public):
    report = run_public_tests(namespace(SOFTMAX), FOLDER, "softmax")
    assert report.passed
    assert len(report.outcomes) == n_public["softmax"]
    assert {o.exercise for o in report.outcomes} == {"softmax"}  # only the exercise asked for
    assert repr(report).endswith(f"{n_public['softmax']}/{n_public['softmax']} public checks passed")
    assert "&#10004;" in report._repr_html_() and "&#10008;" not in report._repr_html_()


def test_check_reads_the_callers_globals(n_public):
    """`check("softmax")` in a notebook cell sees the notebook's definitions, nothing else."""
    names = namespace(SOFTMAX + f"\nfrom autograder.student import check\nREPORT = check('softmax', {str(FOLDER)!r})\n")
    assert names["REPORT"].passed and len(names["REPORT"].outcomes) == n_public["softmax"]
    names = namespace(f"from autograder.student import check\nREPORT = check('softmax', {str(FOLDER)!r})\n")
    assert not names["REPORT"].passed


def test_check_defaults_to_the_current_folder(monkeypatch):
    monkeypatch.chdir(FOLDER)
    names = namespace(SOFTMAX + "\nfrom autograder.student import check\nREPORT = check('softmax')\n")
    assert names["REPORT"].passed


def test_a_stub_fails_with_not_implemented(n_public):
    stub = "def softmax(x, dim=-1):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    report = run_public_tests(namespace(stub), FOLDER, "softmax")
    assert not report.passed and len(report.outcomes) == n_public["softmax"]
    for o in report.outcomes:
        assert not o.passed and "not implemented" in o.message
    assert repr(report).endswith(f"0/{n_public['softmax']} public checks passed")


def test_a_missing_name_fails_with_is_not_defined():
    report = run_public_tests(namespace("import torch\n"), FOLDER, "causal_mask")
    assert report.outcomes and not report.passed
    for o in report.outcomes:
        assert "`causal_mask` is not defined" in o.message


def test_a_wrong_answer_gets_the_tests_message():
    naive = "import torch\ndef softmax(x, dim=-1):\n    return torch.exp(x) / torch.exp(x).sum(dim=dim, keepdim=True)\n"
    report = run_public_tests(namespace(naive), FOLDER, "softmax")
    failed = [o for o in report.outcomes if not o.passed]
    assert failed and any("Subtract the maximum" in o.message for o in failed)
    assert any(o.passed for o in report.outcomes)  # the small examples still pass


def test_an_exception_in_student_code_names_the_line():
    crashing = "def softmax(x, dim=-1):\n    y = x\n    return y.no_such_method()\n"
    report = run_public_tests(namespace(crashing), FOLDER, "softmax")
    assert all(not o.passed for o in report.outcomes)
    message = report.outcomes[0].message
    assert message.startswith("AttributeError:") and "(line 3 of softmax)" in message


def test_an_unknown_exercise_has_no_checks():
    report = run_public_tests(namespace(SOFTMAX), FOLDER, "no_such_exercise")
    assert report.outcomes == [] and not report.passed
    assert repr(report) == "no public checks found for this exercise"


def test_a_folder_without_public_tests_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no public_tests.py"):
        run_public_tests({}, tmp_path, "softmax")


# ---------------------------------------------------------------------------------------------
# llmkit check, the command
# ---------------------------------------------------------------------------------------------


def _llmkit_check(notebook: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder.cli", "check", str(notebook)],
                          capture_output=True, text=True, timeout=240, cwd=notebook.parent)


@pytest.fixture()
def released(tmp_path) -> Path:
    """A copy of the committed student release (so checks never write into the repository)."""
    shutil.copytree(ROOT / "release" / "w02_attention", tmp_path / "w02_attention")
    return tmp_path / "w02_attention" / "attention.ipynb"


def test_cli_on_the_released_stubs_fails_every_check(released, n_public):
    proc = _llmkit_check(released)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"0/{n_public['all']} public checks passed"
    assert n_public["all"] == 16
    assert sum(ln.startswith("FAIL") for ln in lines) == n_public["all"]
    assert "not implemented yet" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_cli_on_the_instructor_notebook_passes(n_public):
    proc = _llmkit_check(NOTEBOOK)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == f"{n_public['all']}/{n_public['all']} public checks passed"
    assert sum(ln.startswith("PASS") for ln in lines) == n_public["all"]


def _student_notebook(tmp_path: Path, replacements: dict[str, str], extra_cells=()) -> Path:
    """The released notebook with some exercise bodies filled in (grade_id -> body)."""
    folder = tmp_path / "w02_attention"
    shutil.copytree(ROOT / "release" / "w02_attention", folder, dirs_exist_ok=True)
    nb = nbformat.read(folder / "attention.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in replacements:
            cell.source = cell.source.replace("    # YOUR CODE HERE\n    raise NotImplementedError()", replacements[gid])
    nb.cells += [nbformat.v4.new_code_cell(src) for src in extra_cells]
    nbformat.write(nb, folder / "attention.ipynb")
    return folder / "attention.ipynb"


def test_cli_reports_syntax_errors_and_keeps_checking_the_rest(tmp_path, n_public):
    """A cell that does not parse costs only its own definitions; a fake result printed by student code
    (the child's stdout carries the student's prints too) is not taken for the child's own."""
    fake = json.dumps({"outcomes": [{"exercise": "x", "name": "x", "passed": True, "message": ""}],
                       "syntax_errors": [], "load_errors": []})
    notebook = _student_notebook(tmp_path, {
        "causal_mask": "    return torch.tril(torch.ones(T, T, dtype=torch.bool))",
        "softmax": "    return (x  # unclosed",
        "scaled_dot_product_attention": f"    print({'@@LLMKIT@@' + fake!r})\n    raise NotImplementedError()",
    })
    proc = _llmkit_check(notebook)
    assert proc.returncode == 1
    assert "syntax error: cell 13, line 19" in proc.stdout
    assert proc.stdout.count("PASS  causal_mask") == n_public["causal_mask"]
    assert "`softmax` is not defined" in proc.stdout
    assert proc.stdout.splitlines()[-1] == f"{n_public['causal_mask']}/{n_public['all']} public checks passed"


def test_cli_survives_a_notebook_that_exits(tmp_path):
    notebook = _student_notebook(tmp_path, {"causal_mask": "    import os\n    os._exit(0)"})
    proc = _llmkit_check(notebook)
    assert proc.returncode == 1
    assert "the checks stopped before finishing" in proc.stdout


def test_cli_on_an_unreadable_notebook(tmp_path):
    bad = tmp_path / "attention.ipynb"
    bad.write_text('{"cells": [')
    proc = _llmkit_check(bad)
    assert proc.returncode == 2
    assert "not valid notebook JSON" in proc.stderr and "Traceback" not in proc.stderr
    missing = subprocess.run([sys.executable, "-m", "autograder.cli", "check", str(tmp_path / "nope.ipynb")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such notebook" in missing.stderr


def test_cli_time_limit_on_an_infinite_loop(tmp_path, monkeypatch, capsys):
    notebook = _student_notebook(tmp_path, {"softmax": "    while True:\n        pass"})
    monkeypatch.setattr(cli, "TIME_LIMIT_S", 5)
    code = cli.run_check(str(notebook))
    out = capsys.readouterr().out
    assert code == 1
    assert "did not finish in 5 s" in out and "infinite loop" in out
