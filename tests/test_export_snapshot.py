"""Snapshot suites (``autograder/export/snapshot.py`` and ``replay.py``): the hidden suite recorded on the
solution as data, replayed against submissions without the reference, solution or suite source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autograder.demo import example_notebook
from autograder.export import bundle, snapshot
from autograder.export.otter import hidden_tests
from autograder.export.replay import grade_snapshot, same, Mismatch
from autograder.grading import grade
from export_support import NOTEBOOK, ROOT, SOLUTION, WEEK, recorded, week_release


@pytest.fixture(scope="module")
def snap(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("snapshot")
    snapshot.write(recorded(), folder, "full")
    return folder


def example(name: str, tmp: Path) -> Path:
    return example_notebook(week_release() / WEEK / NOTEBOOK, ROOT / "tests" / "submissions" / WEEK / f"{name}.py",
                            tmp / f"{name}.ipynb")


def test_recording_covers_the_live_suite(snap):
    manifest = json.loads((snap / "manifest.json").read_text())
    assert manifest["max_score"] == manifest["live_max_score"] == 28
    assert manifest["not_covered"] == []
    live = {t["id"]: t["points"] for t in hidden_tests(WEEK)}
    assert {t["id"]: t["points"] for t in manifest["tests"]} == live
    assert all(t["calls"] > 0 for t in manifest["tests"])
    assert sum(t["linked_checks"] for t in manifest["tests"]) > 100  # the reference's tensors, linked to replies


def test_solution_full_marks_stub_zero(snap):
    solution = grade_snapshot(SOLUTION, snap)
    assert (solution["score"], solution["max_score"]) == (28, 28), [t for t in solution["tests"] if t["status"] != "pass"]
    stub = grade_snapshot(week_release(), snap)  # a repository: finds <week>/<notebook>
    assert stub["score"] == 0 and stub["max_score"] == 28
    assert all("not implemented" in t["message"] for t in stub["tests"])


@pytest.mark.parametrize("name", ["bug_mask_inverted", "hostile_imports_reference"])
def test_snapshot_scores_submissions_like_live_grading(snap, tmp_path, name):
    nb = example(name, tmp_path)
    live = {t.id: t.points for t in grade(nb, WEEK).tests}
    replayed = {t["id"]: t["points"] for t in grade_snapshot(nb, snap)["tests"]}
    assert replayed == live


def test_feedback_levels(snap, tmp_path):
    nb = example("bug_no_scaling", tmp_path)
    levels = {level: grade_snapshot(nb, snap, feedback=level) for level in ("full", "actual-only", "none")}
    assert len({r["score"] for r in levels.values()}) == 1 and levels["full"]["score"] < 28
    failed = lambda r: [t for t in r["tests"] if t["status"] != "pass"]  # noqa: E731
    assert all(t["message"] == "failed" for t in failed(levels["none"]))
    mismatches = [t["message"] for t in failed(levels["full"]) if "expected:" in t["message"]]
    assert mismatches and all("your output:" in m and "input:" in m for m in mismatches)
    assert not any("expected:" in t["message"] for t in failed(levels["actual-only"]))
    assert any("your output:" in t["message"] for t in failed(levels["actual-only"]))


def test_replies_are_compared_with_the_solution_where_no_check_was_recorded():
    same([1, 2, 3], [1, 2, 3], 0.0, "encode(...)", [], [])
    with pytest.raises(Mismatch, match="has 2 items, expected 3"):
        same([1, 2], [1, 2, 3], 0.0, "encode(...)", [], [])
    with pytest.raises(Mismatch, match="is a bool, expected a int"):
        same(True, 1, 0.0, "x", [], [])
    same(torch.tensor([1.0, float("-inf")]), torch.tensor([1.0 + 1e-7, float("-inf")]), 1e-6, "f", [], [])
    with pytest.raises(Mismatch, match="infinities"):
        same(torch.tensor([1.0, 0.0]), torch.tensor([1.0, float("-inf")]), 1e-6, "f", [], [])
    same({"first": 5, "pulled": 3}, {"first": 5, "pulled": 9}, 0.0, "it", [], [["pulled"]])  # ignored place
    with pytest.raises(Mismatch):
        same({"first": 4, "pulled": 3}, {"first": 5, "pulled": 9}, 0.0, "it", [], [["pulled"]])


def test_bundle_engine_has_no_trusted_code(tmp_path, snap):
    written = bundle.write_engine(tmp_path)
    assert "export/replay.py" in written and not any("suites" in w or "parts" in w for w in written)
    bundle.check_no_leaks(tmp_path)
    # the check can fail: a line of the reference planted in the bundle is found
    reference_line = next(ln.strip() for ln in (ROOT / "reference" / "attention.py").read_text().splitlines()
                          if len(ln.strip()) > 40 and not ln.strip().startswith(("#", "import", "from", '"""')))
    (tmp_path / "llmkit_snapshot" / "helper.py").write_text(reference_line + "\n")
    with pytest.raises(RuntimeError, match="reference line"):
        bundle.check_no_leaks(tmp_path)


def test_recording_draws_its_own_inputs_and_leaves_live_grading_alone():
    data = recorded()
    assert isinstance(data["hypothesis_seed"], int)
    import sys

    modules = [m for name, m in sys.modules.items() if name.endswith("test_attention") and hasattr(m, "test_sdpa_no_mask")]
    assert modules, "the week-2 suite module was imported by the recording"
    for module in modules:  # the per-export seed was put back: live grading keeps its derandomized inputs
        assert module.test_sdpa_no_mask._hypothesis_internal_use_seed is None
