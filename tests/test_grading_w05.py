"""Week 5 example submissions get the scores they must: each bug loses points only where it lives.

Each submission is graded the way a student's push is: the released stub notebook with the student's code
as its last cells (a bug file holds only what it changes, on top of ``correct_alternative.py``: see
``autograder.demo.example_cells``), through ``llmkit grade`` in a separate process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grading_support import grade_cli, submission

ROOT = Path(__file__).resolve().parent.parent
SLUG = "w05_finetuning"
SUBMISSIONS = ROOT / "tests" / "submissions" / SLUG

PREPARE = {"test_prepare_replaces_the_head": 1, "test_prepare_freezes_all_but_the_last_block_norm_and_head": 2,
           "test_prepare_keeps_the_pretrained_weights": 1, "test_prepare_finetunes_the_base_model_end_to_end": 2}
LOGITS = {"test_logits_match_reference": 3, "test_logits_keep_the_graph_for_training": 2}
ACCURACY = {"test_accuracy_matches_reference": 3, "test_accuracy_of_all_right_and_all_wrong": 1}
FORMAT = {"test_format_with_input": 2, "test_format_without_input": 2}
COLLATE = {"test_collate_pads_shifts_and_masks_padding": 3, "test_collate_all_padding_rows": 1,
           "test_collate_masks_the_prompt": 3, "test_collate_prompts_of_length_zero_and_one": 1,
           "test_collate_truncates_last": 2}
LOGPROB = {"test_logprob_mean_matches_reference": 3, "test_logprob_sum_option": 1, "test_logprob_extreme_logits": 1,
           "test_logprob_gradients": 2}
DPO = {"test_dpo_matches_reference": 3, "test_dpo_default_beta": 1, "test_dpo_stable_for_large_margins": 2,
       "test_dpo_known_values": 1}
EXERCISES = {"prepare_for_classification": PREPARE, "classification_logits": LOGITS,
             "classification_accuracy": ACCURACY, "format_instruction": FORMAT, "collate_instructions": COLLATE,
             "sequence_logprob": LOGPROB, "dpo_loss": DPO}
ALL = {name for tests in EXERCISES.values() for name in tests}
FULL = {ex: sum(tests.values()) for ex, tests in EXERCISES.items()}
MAX_SCORE = sum(FULL.values())  # 43


def losing(*tests: set[str] | dict) -> dict:
    """Per-exercise scores and the failing set when exactly these tests fail."""
    failing = set().union(*[set(t) for t in tests])
    scores = {ex: sum(p for name, p in t.items() if name not in failing) for ex, t in EXERCISES.items()}
    return {"scores": scores, "failing": failing}


COLLATE_PROMPTS = {"test_collate_masks_the_prompt", "test_collate_prompts_of_length_zero_and_one",
                   "test_collate_truncates_last"}
EXPECTED = {
    "solution": losing(),
    "stub": losing(ALL),
    "correct_alternative": losing(),
    "bug_first_pad_masked": losing(COLLATE),
    "bug_targets_not_shifted": losing(COLLATE),
    "bug_prompt_mask_off_by_one": losing(COLLATE_PROMPTS),
    "bug_first_token_logits": losing(LOGITS),
    "bug_whole_model_trainable": losing({"test_prepare_freezes_all_but_the_last_block_norm_and_head",
                                         "test_prepare_finetunes_the_base_model_end_to_end"}),
    "bug_logprob_over_padding": losing(LOGPROB),
    "bug_dpo_sign_flipped": losing(DPO),
    "bug_beta_twice": losing(DPO),
    "gaming_public_checks": losing(ALL),
    "hostile_tampering": losing({"test_prepare_finetunes_the_base_model_end_to_end"}, DPO),
}
ARGS = {"hostile_tampering": ("--call-timeout", "4")}


def test_every_example_submission_has_an_expectation():
    assert {p.stem for p in SUBMISSIONS.glob("*.py")} == set(EXPECTED) - {"solution", "stub"}
    assert MAX_SCORE == 43


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_submission_scores(name, tmp_path):
    data = grade_cli(submission(SLUG, name, tmp_path), SLUG, tmp_path / "out", *ARGS.get(name, ()))
    expected = EXPECTED[name]
    scores = {e["name"]: (e["score"], e["max_score"]) for e in data["exercises"]}
    assert scores == {ex: (expected["scores"][ex], FULL[ex]) for ex in EXERCISES}, scores
    failed = {t["id"].split("::")[1] for t in data["tests"] if t["status"] != "pass"}
    assert {t["id"].split("::")[1] for t in data["tests"]} == ALL
    assert failed == expected["failing"], {t["id"]: t["message"] for t in data["tests"] if t["status"] != "pass"}
    for t in data["tests"]:
        assert "Traceback" not in t["message"] and "grader error" not in t["message"], t
        assert t["status"] in ("pass", "fail"), t
        if name == "stub":
            assert "not implemented yet" in t["message"], t
    assert data["max_score"] == MAX_SCORE and data["score"] == sum(expected["scores"].values())
    messages = {t["id"].split("::")[1]: t["message"] for t in data["tests"]}
    if name == "solution":
        assert not data["warnings"] and data["manual"][0]["answered"] is True
    if name == "bug_whole_model_trainable":
        assert "should be frozen" in messages["test_prepare_freezes_all_but_the_last_block_norm_and_head"]
        assert "changed parameters that should stay frozen" in messages["test_prepare_finetunes_the_base_model_end_to_end"]
    if name == "bug_first_pad_masked":
        assert "targets" in messages["test_collate_pads_shifts_and_masks_padding"]
    if name == "hostile_tampering":
        assert "finetuning the model you prepared failed" in messages["test_prepare_finetunes_the_base_model_end_to_end"]
        assert "timed out" in messages["test_prepare_finetunes_the_base_model_end_to_end"]
        assert any("was not called again" in messages[t] for t in DPO)
    assert data["duration_s"] < 120


def test_gaming_submission_passes_the_public_checks_it_targets():
    """The gaming example really does pass the visible checks: they are not what grades."""
    from autograder.student.check import run_public_tests

    names: dict = {}
    exec(compile((SUBMISSIONS / "gaming_public_checks.py").read_text(), "gaming", "exec"), names)
    report = run_public_tests(names, ROOT / "assignments" / SLUG)
    targeted = [o for o in report.outcomes if o.exercise in ("format_instruction", "classification_accuracy")]
    assert targeted and all(o.passed for o in targeted), report
    dpo = [o for o in report.outcomes if o.exercise == "dpo_loss"]
    assert dpo and all(o.passed for o in dpo), report
