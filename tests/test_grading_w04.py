"""Week 4 example submissions get the scores they must: each bug loses points only where it lives.

Each submission is graded the way a student's push is: the released stub notebook with the student's code
as its last cells, through ``llmkit grade`` in a separate process. A bug file holds only the definitions it
breaks and builds on ``correct_alternative.py`` (``# builds on:``, see ``autograder.demo.example_cells``).
The notebooks are graded two at a time (once per module), then each case checks its per-exercise scores
and exactly which tests failed.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from grading_support import grade_cli, submission

ROOT = Path(__file__).resolve().parent.parent
SLUG = "w04_pretraining"
SUBMISSIONS = ROOT / "tests" / "submissions" / SLUG

DATASET = {"test_dataset_windows", "test_dataset_edges", "test_dataloader_in_order", "test_dataloader_shuffled",
           "test_dataloader_drop_last"}
LOSS = {"test_cross_entropy_matches_reference", "test_cross_entropy_is_stable", "test_cross_entropy_gradient",
        "test_cross_entropy_all_ignored_is_nan", "test_perplexity"}
ADAMW = {"test_adamw_matches_reference", "test_adamw_missing_zero_and_frozen", "test_adamw_param_groups_and_schedule",
         "test_adamw_state_dict_round_trip"}
LR = {"test_lr_matches_reference", "test_lr_warmup_boundaries", "test_lr_decay_end_and_no_warmup"}
CLIP = {"test_clip_matches_pytorch", "test_clip_returns_total_norm", "test_clip_edge_cases"}
TRAIN = {"test_train_matches_reference", "test_train_accumulation_equals_bigger_batch",
         "test_train_modes_and_evaluation_batches", "test_train_end_to_end_on_the_corpus"}
CHECKPOINT = {"test_checkpoint_round_trip", "test_checkpoint_resume_equals_uninterrupted",
              "test_checkpoint_is_a_snapshot_in_its_file"}
EVERYTHING = DATASET | LOSS | ADAMW | LR | CLIP | TRAIN | CHECKPOINT
FULL = {"gpt_dataset": 6, "cross_entropy": 6, "adamw": 8, "lr_at_step": 4, "clip_grad_norm": 4, "train": 10,
        "checkpoint": 4}
ZERO = {name: 0 for name in FULL}
# AdamW's own state_dict round trip compares the submission with itself: an AdamW bug keeps that point.
ADAMW_UPDATE = ADAMW - {"test_adamw_state_dict_round_trip"}

# submission -> (per-exercise scores, the tests that must fail)
EXPECTED = {
    "solution": (FULL, set()),
    "stub": (ZERO, EVERYTHING),
    "correct_alternative": (FULL, set()),
    # targets equal to the inputs: every dataset and loader test; train uses the kit's loaders
    "bug_targets_not_shifted": (FULL | {"gpt_dataset": 0}, DATASET),
    # Adam + L2 instead of AdamW, and no bias correction: the update tests of adamw only
    "bug_adam_l2_weight_decay": (FULL | {"adamw": 1}, ADAMW_UPDATE),
    "bug_no_bias_correction": (FULL | {"adamw": 1}, ADAMW_UPDATE),
    # the warm-up one step ahead: the reference and warm-up tests; train runs the kit's schedule
    "bug_warmup_off_by_one": (FULL | {"lr_at_step": 1}, {"test_lr_matches_reference", "test_lr_warmup_boundaries"}),
    # per-parameter clipping: the clipped gradients only (the returned global norm is right)
    "bug_clip_per_parameter": (FULL | {"clip_grad_norm": 2}, {"test_clip_matches_pytorch"}),
    # k times the gradient: off the reference run, and far off the bigger batch with SGD
    "bug_accum_not_divided": (FULL | {"train": 4}, {"test_train_matches_reference",
                                                    "test_train_accumulation_equals_bigger_batch"}),
    # eval mode after the first evaluation: only the forward-pass log sees it (the kit's models have no dropout)
    "bug_eval_mode_stuck": (FULL | {"train": 8}, {"test_train_modes_and_evaluation_batches"}),
    # a fake history and checkpoints in memory: nothing
    "gaming_fake_history": (ZERO, EVERYTHING),
    # an endless train, a checkpoint over the file-size limit, os._exit in the loss: nothing, in bounded time
    "hostile_train_forever": (ZERO, EVERYTHING),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """Every case graded once, two at a time: {name: result.json}."""
    work = tmp_path_factory.mktemp("w04")

    def grade(name: str):
        return name, grade_cli(submission(SLUG, name, work), SLUG, work / "out" / name)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return dict(pool.map(grade, sorted(EXPECTED)))


def test_every_example_submission_has_an_expectation():
    assert {p.stem for p in SUBMISSIONS.glob("*.py")} == set(EXPECTED) - {"solution", "stub"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_submission_scores(name, results):
    data = results[name]
    want, failing = EXPECTED[name]
    scores = {e["name"]: e["score"] for e in data["exercises"]}
    assert scores == want, scores
    assert {e["name"]: e["max_score"] for e in data["exercises"]} == FULL
    failed = {t["id"].split("::")[1] for t in data["tests"] if t["status"] != "pass"}
    assert failed == failing
    assert any("test_checkpoint_from_gpu_resumes_on_cpu" in w for w in data["warnings"])  # GPU item: left out
    for t in data["tests"]:
        assert "Traceback" not in t["message"] and "grader error" not in t["message"], t
        if name == "stub":
            assert "not implemented yet" in t["message"], t
    messages = {t["id"].split("::")[1]: t["message"] for t in data["tests"]}
    if name == "bug_targets_not_shifted":
        assert "shift the targets by one" in messages["test_dataset_windows"]
    if name == "bug_warmup_off_by_one":
        assert "off by one" in messages["test_lr_warmup_boundaries"]
    if name == "bug_eval_mode_stuck":
        assert "ran in eval mode" in messages["test_train_modes_and_evaluation_batches"]
    if name == "gaming_fake_history":
        assert "wrote no file" in messages["test_checkpoint_round_trip"]
        assert "not below 2.6" in messages["test_train_end_to_end_on_the_corpus"]
        assert "0 forward passes" in messages["test_train_modes_and_evaluation_batches"]
    if name == "hostile_train_forever":
        assert "timed out" in messages["test_train_matches_reference"]
        assert "not called again" in messages["test_train_end_to_end_on_the_corpus"]
        assert "File too large" in messages["test_checkpoint_round_trip"]
    assert data["duration_s"] < 300
