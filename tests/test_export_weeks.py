"""Snapshot export for every week, not just the week the detailed export tests use.

Each week is recorded once, with the solutions of every earlier week published (the most a public bundle
may carry); its replay must give the solution full marks on what it covers and the stub zero. How much of
each week a bundle covers, with and without the earlier solutions published, is pinned here, so a change
that silently drops tests from Classroom 50 feedback fails."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from autograder.assignments import all_assignments
from autograder.export import bundle, snapshot, weeks
from autograder.export.replay import grade_snapshot
from grading_support import submission

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
SEED = 20261125


def earlier(slug: str) -> tuple[str, ...]:
    return tuple(w for w in WEEKS if w < slug)


@pytest.fixture(scope="module", params=WEEKS)
def exported(request, tmp_path_factory):
    slug = request.param
    folder = tmp_path_factory.mktemp(f"snapshot-{slug}")
    # a fixed hypothesis seed: the same inputs on every run (an export draws fresh ones)
    manifest = snapshot.write(snapshot.record(slug, published=earlier(slug), seed=SEED), folder)
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


def test_solution_full_marks_stub_zero(exported, tmp_path):
    slug, folder, manifest = exported
    solution = grade_snapshot(submission(slug, "solution", tmp_path), folder)
    assert solution["score"] == solution["max_score"] == manifest["max_score"], \
        [(t["id"], t["message"][:300]) for t in solution["tests"] if t["status"] != "pass"]
    stub = grade_snapshot(submission(slug, "stub", tmp_path), folder)
    assert stub["score"] == 0 and stub["max_score"] == manifest["max_score"]


def test_a_correct_solution_written_differently_gets_full_marks(exported, tmp_path):
    """The replay compares replies with the instructor's solution, so every choice the notebook leaves open
    (shuffle order, optimizer state layout, a number as a tensor) needs a rule in weeks.py."""
    slug, folder, manifest = exported
    result = grade_snapshot(submission(slug, "correct_alternative", tmp_path), folder)
    assert result["score"] == manifest["max_score"], \
        [(t["id"], t["message"][:300]) for t in result["tests"] if t["status"] != "pass"]


def test_bundle_carries_only_the_allowed_stand_ins(exported, tmp_path):
    slug, _, manifest = exported
    modules = tuple(manifest["part_modules"])
    assert modules == weeks.part_modules(slug, earlier(slug))
    written = bundle.write_engine(tmp_path, modules)
    carried = {Path(w).stem for w in written if w.startswith("sandbox/parts/")} - {"__init__"}
    assert carried == set(modules)
    bundle.check_no_leaks(tmp_path, modules, earlier(slug))
    if any(weeks.module_facts(m)[0] for m in modules):  # without the earlier weeks published: refused
        with pytest.raises(RuntimeError, match="parts"):
            bundle.check_no_leaks(tmp_path, weeks.part_modules(slug), ())


@pytest.mark.parametrize("name", ["correct_alternative", "bug_accum_not_divided", "bug_eval_mode_stuck"])
def test_week4_training_replays_like_live_grading(tmp_path, name):
    """Week 4's train tests are covered only through the kit's GPT (week 3 published): the replay gives a
    differently written correct loop every point, takes points from two loop bugs in train, and scores
    every other exercise test by test as live grading does."""
    from autograder.grading import grade

    slug = "w04_pretraining"
    folder = tmp_path / "snapshot"
    snapshot.write(_recorded_w04(), folder)
    nb = submission(slug, name, tmp_path)
    live = {t.id: t.points for t in grade(nb, slug).tests}
    replayed = {t["id"]: t["points"] for t in grade_snapshot(nb, folder)["tests"]}
    assert any(k.startswith("train::") for k in replayed)
    # outside train, test by test as live; in train, the bug costs points there too (which of train's tests
    # catch it depends on the inputs drawn, and the snapshot's are its own)
    assert {k: v for k, v in replayed.items() if not k.startswith("train::")} == \
        {k: live[k] for k in replayed if not k.startswith("train::")}
    train = sum(v for k, v in replayed.items() if k.startswith("train::"))
    if name == "correct_alternative":
        assert train == 10
    else:
        assert train < 10


@functools.lru_cache(maxsize=None)
def _recorded_w04() -> dict:
    return snapshot.record("w04_pretraining", published=earlier("w04_pretraining"), seed=SEED)
