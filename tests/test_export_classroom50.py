"""``llmkit export classroom50``: the bundle, the assignments.json entry, and the autograder run exactly as
Classroom 50's runner runs it (working directory = the student's checkout, its environment variables,
``$CLASSROOM50_BUNDLE_DIR``), including a timeout and a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.export import classroom50
from autograder.export.bundle import tarball
from autograder.export.snapshot import ExportError
from export_support import (CLASSROOM50_ENTRY, CLASSROOM50_RESULT, SOLUTION, WEEK, recorded, schema_errors,
                            student_checkout)

RUNNER_ENV = {
    "CLASSROOM": "llm-2026", "ASSIGNMENT": "w02-attention", "SUBMISSION_TAG": "submit/20260301T120000Z-abc1234",
    "COMMIT_URL": "https://github.com/course/llm-2026-w02-attention-ada/commit/abc1234",
    "RELEASE_URL": "https://github.com/course/llm-2026-w02-attention-ada/releases/tag/submit%2F20260301T120000Z-abc1234",
    "REVIEW_URL": "https://github.com/course/llm-2026-w02-attention-ada/compare/000...abc1234",
    "USERNAME": "ada", "OWNER": "ada", "ASSIGNMENT_TYPE": "individual",
}


@pytest.fixture(scope="module")
def classroom(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("classroom50") / "llm-2026"
    out = classroom50.export(WEEK, folder, recorded=recorded(), time_limit_s=300)
    assert out["tarball_bytes"] < 10 * 1024 * 1024
    return folder


def run_like_classroom50(bundle_dir: Path, checkout: Path, tmp: Path, **extra_env) -> subprocess.CompletedProcess:
    """What Classroom 50's runner.py does: extract the bundle elsewhere, run autograder.py with the runner's
    Python, cwd at the student checkout, its variables and CLASSROOM50_BUNDLE_DIR set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLASSROOM", "PYTHONPATH"))}
    env.update(RUNNER_ENV, CLASSROOM50_BUNDLE_DIR=str(bundle_dir), RUNNER_TEMP=str(tmp / "runner-temp"), **extra_env)
    (tmp / "runner-temp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, str(bundle_dir / "autograder.py")], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=600)


def result_of(checkout: Path) -> dict:
    data = json.loads((checkout / "result.json").read_text())
    assert schema_errors(data, CLASSROOM50_RESULT) == []
    assert list(data) == list(CLASSROOM50_RESULT["required"])  # exactly these keys, in this order
    assert data["score"] == sum(t["score"] for t in data["tests"])
    assert data["max-score"] == sum(t["max-score"] for t in data["tests"])
    assert all(t["score"] <= t["max-score"] for t in data["tests"])
    for key, var in (("classroom", "CLASSROOM"), ("assignment", "ASSIGNMENT"), ("submission", "SUBMISSION_TAG"),
                     ("commit", "COMMIT_URL"), ("release", "RELEASE_URL"), ("review", "REVIEW_URL")):
        assert data[key] == RUNNER_ENV[var]
    assert (checkout / "release-body.md").read_text().startswith("## Week 2")
    return data


def test_bundle_layout_and_assignments_entry(classroom):
    bundle = classroom / "autograders" / "w02-attention"
    assert {p.name for p in bundle.iterdir()} == {"autograder.py", "autograder.json", "requirements.txt",
                                                  "snapshot", "llmkit_snapshot"}
    manifest = json.loads((classroom / "assignments.json").read_text())
    assert manifest["schema"] == "classroom50/assignments/v1"
    [entry] = manifest["assignments"]
    assert schema_errors(entry, CLASSROOM50_ENTRY) == []
    assert entry["slug"] == "w02-attention" and entry["points"] == 28
    pins = [ln for ln in (bundle / "requirements.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert "hypothesis" in " ".join(pins) and not any(p.startswith("torch") for p in pins)  # torch first, CPU


def test_export_refuses_invalid_slugs_and_labels(tmp_path):
    with pytest.raises(ExportError, match="not a Classroom 50 slug"):
        classroom50.export(WEEK, tmp_path, c50_slug="W02_Attention", recorded=recorded())
    with pytest.raises(ExportError, match="runs-on"):
        classroom50.export(WEEK, tmp_path, runs_on=["self hosted"], recorded=recorded())


def test_gpu_runner_labels_go_into_the_runtime_block(tmp_path):
    classroom50.export(WEEK, tmp_path, runs_on=["self-hosted", "gpu"], recorded=recorded())
    [entry] = json.loads((tmp_path / "assignments.json").read_text())["assignments"]
    assert entry["runtime"]["runs-on"] == ["self-hosted", "gpu"]
    assert schema_errors(entry, CLASSROOM50_ENTRY) == []


def test_solution_and_stub_graded_as_the_runner_would(classroom, tmp_path):
    bundle = classroom / "autograders" / "w02-attention"
    solved = student_checkout(tmp_path / "a", SOLUTION)
    proc = run_like_classroom50(bundle, solved, tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = result_of(solved)
    assert (data["score"], data["max-score"]) == (28, 28)
    stub = student_checkout(tmp_path / "b", None)
    proc = run_like_classroom50(bundle, stub, tmp_path)
    assert proc.returncode == 0
    data = result_of(stub)
    assert (data["score"], data["max-score"]) == (0, 28)
    assert all(not t["passed"] and "not implemented" in t["message"] for t in data["tests"])
    assert "What to fix" in (stub / "release-body.md").read_text()


def test_own_time_limit_still_writes_a_valid_result(classroom, tmp_path):
    bundle = classroom / "autograders" / "w02-attention"
    config = json.loads((bundle / "autograder.json").read_text())
    config["time_limit_s"] = 3  # less than starting the worker takes
    (bundle / "autograder.json").write_text(json.dumps(config))
    try:
        checkout = student_checkout(tmp_path, SOLUTION)
        proc = run_like_classroom50(bundle, checkout, tmp_path)
    finally:
        config["time_limit_s"] = 300
        (bundle / "autograder.json").write_text(json.dumps(config))
    assert proc.returncode == 0  # grading completed (with a timeout): not an infrastructure failure
    data = result_of(checkout)
    assert data["max-score"] == 28 and data["score"] < 28
    assert any("time limit of 3 s" in t.get("message", "") for t in data["tests"])


def test_infrastructure_failure_exits_nonzero_with_a_valid_result(classroom, tmp_path):
    checkout = student_checkout(tmp_path, SOLUTION)
    proc = run_like_classroom50(classroom / "autograders" / "w02-attention", checkout, tmp_path,
                                LLMKIT_FORCE_INSTALL="1", LLMKIT_TORCH_INDEX="http://127.0.0.1:9/simple",
                                PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_EXTRA_INDEX_URL="",
                                PIP_FIND_LINKS="", PIP_CONFIG_FILE=os.devnull, PIP_RETRIES="0", PIP_TIMEOUT="2")
    assert proc.returncode == 1
    data = result_of(checkout)
    assert data["score"] == 0 and data["max-score"] == 28
    assert all("could not install" in t["message"] for t in data["tests"])


def test_a_bundle_with_the_kits_tools_and_week_3s_gpt_runs_as_the_runner_would(tmp_path):
    """Week 4 with week 3's solutions published: the bundle carries the kit's GPT and week 4's tools (never
    week 4's own stand-ins), its worker loads them from the bundle, and the solution gets every point."""
    import io
    import tarfile

    from export_support import ROOT

    week = "w04_pretraining"
    out = classroom50.export(week, tmp_path / "llm-2026", time_limit_s=600,
                             published=("w01_tokenization", "w02_attention", "w03_gpt"))
    assert (out["max_score"], out["live_max_score"]) == (42, 42)
    folder = Path(out["folder"])
    parts = sorted(p.name for p in (folder / "llmkit_snapshot" / "sandbox" / "parts").glob("*.py"))
    assert parts == ["__init__.py", "gpt.py", "training_tools.py"]
    extracted = tmp_path / "extracted"  # as the runner gets it: the published tarball, unpacked elsewhere
    with tarfile.open(fileobj=io.BytesIO(tarball(folder))) as tar:
        tar.extractall(extracted, filter="data")
    checkout = student_checkout(tmp_path, ROOT / "assignments" / week / "pretraining.ipynb", week)
    proc = run_like_classroom50(extracted / folder.name, checkout, tmp_path, ASSIGNMENT="w04-pretraining")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((checkout / "result.json").read_text())
    assert schema_errors(data, CLASSROOM50_RESULT) == []
    assert (data["score"], data["max-score"]) == (42, 42), [t for t in data["tests"] if not t["passed"]]

