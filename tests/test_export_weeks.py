"""Snapshot export for every week, not just the week the detailed export tests use.

Each week is recorded once, with the solutions of every earlier week published (the most a public bundle
may carry); its replay must give the solution full marks on what it covers and the stub zero. How much of
each week a bundle covers, with and without the earlier solutions published, is pinned here, so a change
that silently drops tests from Classroom 50 feedback fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.assignments import all_assignments, get_assignment
from autograder.export import bundle, snapshot, weeks
from autograder.export.replay import grade_snapshot
from export_support import ROOT, week_release

# week -> (points covered with no solutions published, with earlier weeks' published, live maximum)
COVERAGE = {
    "w01_tokenization": (26, 26, 26),
    "w02_attention": (28, 28, 28),
    "w03_gpt": (21, 21, 31),  # decoding runs on the kit's GPT: week 3's own solution
    "w04_pretraining": (28, 42, 42),  # train and checkpoints run on the kit's GPT (week 3's)
    "w05_finetuning": (28, 32, 43),  # the head tests need this week's prepare_for_classification
    "w06_lora": (17, 26, 32),  # merge and counting need this week's apply_lora
    "w07_retrieval": (41, 41, 41),
}
WEEKS = sorted(all_assignments())


def earlier(slug: str) -> tuple[str, ...]:
    return tuple(w for w in WEEKS if w < slug)


@pytest.fixture(scope="module", params=WEEKS)
def exported(request, tmp_path_factory):
    slug = request.param
    folder = tmp_path_factory.mktemp(f"snapshot-{slug}")
    manifest = snapshot.write(snapshot.record(slug, published=earlier(slug)), folder)
    return slug, folder, manifest


def test_every_week_is_listed():
    assert sorted(COVERAGE) == WEEKS


def test_coverage(exported):
    slug, _, manifest = exported
    default, published, live = COVERAGE[slug]
    assert manifest["live_max_score"] == live
    assert manifest["max_score"] == published, manifest["not_covered"]
    allowed = set(weeks.public_parts(slug))  # what a bundle carries when nothing is published
    assert sum(t["points"] for t in manifest["tests"] if set(t["stand_ins"]) <= allowed) == default
    assert sum(t["points"] for t in manifest["tests"]) + sum(t["points"] for t in manifest["not_covered"]) == live
    for test in manifest["not_covered"]:
        assert test["reason"]


def test_solution_full_marks_stub_zero(exported):
    slug, folder, manifest = exported
    assignment = get_assignment(slug)
    solution = grade_snapshot(ROOT / "assignments" / slug / assignment.notebook, folder)
    assert solution["score"] == solution["max_score"] == manifest["max_score"], \
        [(t["id"], t["message"][:300]) for t in solution["tests"] if t["status"] != "pass"]
    stub = grade_snapshot(week_release(slug) / slug / assignment.notebook, folder)
    assert stub["score"] == 0 and stub["max_score"] == manifest["max_score"]


def test_bundle_carries_only_the_allowed_stand_ins(exported, tmp_path):
    slug, _, manifest = exported
    modules = tuple(manifest["part_modules"])
    assert modules == weeks.part_modules(slug, earlier(slug))
    written = bundle.write_engine(tmp_path, modules)
    carried = {Path(w).stem for w in written if w.startswith("sandbox/parts/")} - {"__init__"}
    assert carried == set(modules)
    bundle.check_no_leaks(tmp_path, modules, earlier(slug))
    if modules:  # the same bundle without the earlier weeks published is refused
        forbidden = [m for m in modules if weeks.module_facts(m)[0]]
        if forbidden:
            with pytest.raises(RuntimeError, match="parts modules"):
                bundle.check_no_leaks(tmp_path, weeks.part_modules(slug), ())
    json.dumps(manifest)  # plain data
