"""Week 3 example submissions get the scores they must: each bug loses points only where it lives.

Each submission is graded the way a student's push is: the released stub notebook with the student's
code appended, through ``llmkit grade`` in a separate process. Bug files hold only the definition they
break (``# builds on: correct_alternative``), so the rest of the notebook is correct.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grading_support import grade_cli, submission

ROOT = Path(__file__).resolve().parent.parent
SLUG = "w03_gpt"
SUBMISSIONS = ROOT / "tests" / "submissions" / SLUG
FULL = {"layer_norm": 3, "gelu": 2, "feed_forward": 2, "transformer_block": 4, "gpt_model": 4, "top_k_filter": 3,
        "top_p_filter": 3, "generate": 6, "generate_cached": 4}


def scores(**lost) -> dict:
    return {ex: pts - lost.get(ex, 0) for ex, pts in FULL.items()}


# submission -> (per-exercise scores, the tests that must fail)
EXPECTED = {
    "solution": (scores(), set()),
    "stub": ({ex: 0 for ex in FULL}, None),  # every test fails
    "correct_alternative": (scores(), set()),
    "bug_unbiased_variance": (scores(layer_norm=3), {"test_layer_norm_matches_reference", "test_layer_norm_gradients",
                                                     "test_layer_norm_starts_as_the_identity_normaliser"}),
    "bug_gelu_exact": (scores(gelu=2), {"test_gelu_matches_tanh_approximation", "test_gelu_gradient_and_extremes"}),
    "bug_post_norm": (scores(transformer_block=4), {"test_block_matches_reference", "test_block_gradients",
                                                    "test_block_dropout_is_off_in_eval_mode"}),
    "bug_missing_residual": (scores(transformer_block=4), {"test_block_matches_reference", "test_block_gradients",
                                                           "test_block_dropout_is_off_in_eval_mode"}),
    # the parameters are right (1 point kept); every T shorter than the context breaks
    "bug_pos_not_sliced": (scores(gpt_model=3), {"test_model_matches_reference", "test_model_gradients"}),
    "bug_top_p_one_too_few": (scores(top_p_filter=3), {"test_top_p_matches_reference", "test_top_p_edges"}),
    "bug_context_not_cropped": (scores(generate=1), {"test_generation_crops_the_context"}),
    "bug_sampling_order": (scores(generate=1), {"test_sampling_distribution"}),
    "bug_kv_cache_positions": (scores(generate_cached=2), {"test_cached_greedy_generation"}),
    # the right tokens without a cache: the cache item only
    "gaming_no_cache": (scores(generate_cached=2), {"test_cached_greedy_generation"}),
    # zeroes the kit model's output head and answers token 0: the grader's own reference is untouched
    "hostile_tamper_model": (scores(generate=6), {"test_greedy_generation", "test_generation_crops_the_context",
                                                  "test_generation_stops_at_eos", "test_sampling_distribution",
                                                  "test_sampling_uses_the_generator"}),
}


def test_every_example_submission_has_an_expectation():
    assert {p.stem for p in SUBMISSIONS.glob("*.py")} == set(EXPECTED) - {"solution", "stub"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_submission_scores(name, tmp_path):
    data = grade_cli(submission(SLUG, name, tmp_path), SLUG, tmp_path / "out")
    want, failing = EXPECTED[name]
    got = {e["name"]: e["score"] for e in data["exercises"]}
    assert got == want, {ex: (got[ex], want[ex]) for ex in want if got.get(ex) != want[ex]}
    assert data["max_score"] == sum(FULL.values())
    failed = {t["id"].split("::")[1] for t in data["tests"] if t["status"] != "pass"}
    if failing is None:
        assert failed == {t["id"].split("::")[1] for t in data["tests"]}
    else:
        assert failed == failing
    for t in data["tests"]:
        assert "Traceback" not in t["message"] and "grader error" not in t["message"], t
        if name == "stub":
            assert "not implemented yet" in t["message"], t
    if name == "gaming_no_cache":
        message = next(t["message"] for t in data["tests"] if t["id"].endswith("test_cached_greedy_generation"))
        assert "each position is embedded once" in message
