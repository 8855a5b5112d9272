"""``llmkit export otter``: a zip built by otter-grader's own ``otter generate``, graded with ``otter run``
exactly as Gradescope would run it; the scores equal ``llmkit grade``'s, and results.json follows
Gradescope's format."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.export import otter
from autograder.grading import grade
from export_support import GRADESCOPE_RESULTS, NOTEBOOK, SOLUTION, WEEK, schema_errors, week_release


@pytest.fixture(scope="module")
def zip_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("otter") / "autograder.zip"
    info = otter.export(WEEK, out)
    assert info["points"] == 28
    return out


def otter_run(zip_path: Path, notebook: Path, tmp: Path) -> dict:
    submission = tmp / "submission.ipynb"
    shutil.copy(notebook, submission)
    (tmp / "out").mkdir()
    otter_cli = Path(sys.executable).with_name("otter")
    proc = subprocess.run([str(otter_cli), "run", "-a", str(zip_path), "-o", str(tmp / "out"), "--no-logo",
                           str(submission)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp / "out" / "results.json").read_text())
    assert schema_errors(results, GRADESCOPE_RESULTS) == []
    return results


def test_zip_is_otters_own_format(zip_path):
    names = set(zipfile.ZipFile(zip_path).namelist())
    assert {"run_autograder", "setup.sh", "otter_config.json", "environment.yml"} <= names
    tests = sorted(n for n in names if n.startswith("tests/"))
    assert tests == ["tests/q01_softmax.py", "tests/q02_causal_mask.py", "tests/q03_scaled_dot_product_attention.py",
                     "tests/q04_multi_head_attention.py"]
    assert "files/llmkit/reference/attention.py" in names  # the live suite: Gradescope keeps the zip private
    config = json.loads(zipfile.ZipFile(zip_path).read("otter_config.json"))
    assert config["plugins"][0]["autograder.export.otter_plugin.LlmkitGrader"]["assignment"] == WEEK
    assert "torch==2.13.0" in zipfile.ZipFile(zip_path).read("environment.yml").decode()


@pytest.mark.parametrize("which", ["solution", "stub"])
def test_otter_run_scores_like_llmkit_grade(zip_path, tmp_path, which):
    notebook = SOLUTION if which == "solution" else week_release() / WEEK / NOTEBOOK
    kit = grade(notebook, WEEK)
    results = otter_run(zip_path, notebook, tmp_path)
    assert results["score"] == kit.score
    per_exercise = {t["name"]: (t["score"], t["max_score"]) for t in results["tests"] if "max_score" in t}
    assert per_exercise == kit.exercise_scores()
    if which == "stub":
        assert kit.score == 0 and "not implemented" in json.dumps(results)


def test_otter_run_on_a_week_with_trusted_stand_ins(tmp_path):
    """Week 4 loads the kit's GPT and training parts into the worker: they must travel in the zip and load
    in otter's run as they do in llmkit grade."""
    week = "w04_pretraining"
    zip_file = tmp_path / "w04.zip"
    assert otter.export(week, zip_file)["points"] == 42
    names = set(zipfile.ZipFile(zip_file).namelist())
    assert {f"files/llmkit/autograder/sandbox/parts/{m}.py" for m in ("gpt", "training", "training_tools")} <= names
    notebook = SOLUTION.parents[1] / week / "pretraining.ipynb"
    results = otter_run(zip_file, notebook, tmp_path)
    assert results["score"] == 42, [t for t in results["tests"] if t.get("score") != t.get("max_score")]
