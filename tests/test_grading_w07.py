"""Week 7 example submissions get the scores they must: each bug loses points where it lives.

Each submission is graded the way a student's push is: the released stub notebook with the student's
code as its last cells, through ``llmkit grade`` in a separate process. A ``bug_*`` file holds only the
definitions it breaks and builds on ``correct_alternative.py`` (``# builds on:``, see docs/authoring.md). The release is built from this
week's folder alone, so the test does not depend on other weeks being complete.

Hidden suite (41 points), per exercise: chunk_text 5 (matches 3, edge cases 1, bad overlap 1);
bm25_scores 6 (matches 3, parameters 1, edge cases 1, common term 1); cosine_top_k 5 (matches 3, zero and
duplicate vectors 1, ties 1); hybrid_scores 4 (matches 3, constant lists 1); mmr 5 (matches 3, duplicates
and zero vectors 1, ties 1); recall_at_k 2; mrr 2; retriever 9 (matches 3, embed_fn 1, errors 1, ties 1,
shipped-question recall@5 in each mode 3 x 1); build_prompt 3 (format 2, no hits 1).

The Retriever calls the student's own functions, but while it is graded those names refer to the kit's
correct versions (``autograder/sandbox/parts/retrieval.py``): a BM25 or hybrid bug costs points only in
its own exercise. Every other exercise is graded on inputs built by the reference.
Expected scores are exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grading_support import grade_cli, submission

ROOT = Path(__file__).resolve().parent.parent
SLUG = "w07_retrieval"
SUBMISSIONS = ROOT / "tests" / "submissions" / SLUG

TESTS = {
    "chunk_text": {"test_chunk_matches_reference", "test_chunk_edge_cases", "test_chunk_rejects_bad_overlap"},
    "bm25_scores": {"test_bm25_matches_reference", "test_bm25_parameters", "test_bm25_edge_cases",
                    "test_bm25_common_term_counts"},
    "cosine_top_k": {"test_cosine_top_k_matches_reference", "test_cosine_top_k_zero_and_duplicate_vectors",
                     "test_cosine_top_k_ties_go_to_the_lower_index"},
    "hybrid_scores": {"test_hybrid_matches_reference", "test_hybrid_constant_lists"},
    "mmr": {"test_mmr_matches_reference", "test_mmr_duplicates_and_zero_vectors", "test_mmr_ties_go_to_the_lower_index"},
    "recall_at_k": {"test_recall_matches_reference"},
    "mrr": {"test_mrr_matches_reference"},
    "retriever": {"test_retriever_matches_reference", "test_retriever_calls_embed_fn", "test_retriever_errors",
                  "test_retriever_ties_go_to_the_lower_index", "test_shipped_questions_recall_bm25",
                  "test_shipped_questions_recall_dense", "test_shipped_questions_recall_hybrid"},
    "build_prompt": {"test_build_prompt_matches_format", "test_build_prompt_without_hits"},
}
FULL = {"chunk_text": 5, "bm25_scores": 6, "cosine_top_k": 5, "hybrid_scores": 4, "mmr": 5, "recall_at_k": 2,
        "mrr": 2, "retriever": 9, "build_prompt": 3}
ALL = set().union(*TESTS.values())


def scores(**changed) -> dict[str, int]:
    return {**FULL, **changed}


# submission -> (per-exercise scores, the tests that must fail)
EXPECTED = {
    "solution": (FULL, set()),
    "stub": ({name: 0 for name in FULL}, ALL),
    "correct_alternative": (FULL, set()),
    # range(0, n - chunk_size + 1, step): the short last chunk is lost (the fixed edge cases happen to fit)
    "bug_chunk_drops_tail": (scores(chunk_text=2), {"test_chunk_matches_reference"}),
    # step = chunk_size - 2 * overlap: wrong windows whenever overlap > 0
    "bug_overlap_counted_twice": (scores(chunk_text=1), {"test_chunk_matches_reference", "test_chunk_edge_cases"}),
    # ln((N - df + 0.5) / (df + 0.5)): BM25 scores wrong (only the all-zero edge cases survive); the Retriever's
    # BM25 and hybrid results follow, dense search (and the all-zero ties) do not
    # ln((N - df + 0.5) / (df + 0.5)): BM25 scores wrong (only the all-zero edge cases survive); the Retriever
    # is graded with the kit's bm25_scores, so it keeps its points
    "bug_idf_no_smoothing": (scores(bm25_scores=1),
                             {"test_bm25_matches_reference", "test_bm25_parameters", "test_bm25_common_term_counts"}),
    # raw dot products: cosine_top_k fails everywhere (correct_alternative's Retriever has its own cosine)
    "bug_cosine_no_normalisation": (scores(cosine_top_k=0), TESTS["cosine_top_k"]),
    # sorted((score, index), reverse=True): equal scores go to the higher index; only the exact-tie tests see it
    "bug_ties_higher_index": (scores(cosine_top_k=4, retriever=8),
                              {"test_cosine_top_k_ties_go_to_the_lower_index",
                               "test_retriever_ties_go_to_the_lower_index"}),
    # a picked document stays a candidate: repeated picks, and k > n returns too many
    "bug_mmr_reselects": (scores(mmr=0), TESTS["mmr"]),
    # raw scores added: hybrid_scores fails; the Retriever, graded with the kit's hybrid_scores, does not
    "bug_hybrid_no_normalisation": (scores(hybrid_scores=0), TESTS["hybrid_scores"]),
    # divides by k: that is precision@k
    "bug_recall_divides_by_k": (scores(recall_at_k=0), TESTS["recall_at_k"]),
    # newlines kept and numbering from 0: the format test fails; the no-hits prompt is still right
    "bug_prompt_keeps_whitespace": (scores(build_prompt=1), {"test_build_prompt_matches_format"}),
    # refusing every input, hard-coded answers, perfect metrics: nothing earns a point
    "gaming_checks": ({name: 0 for name in FULL}, ALL),
    # handles, NaN, booleans, strings, dicts, an always-equal str, a function that sleeps past the time limit
    "hostile_odd_results": ({name: 0 for name in FULL}, ALL),
}


def test_every_example_submission_has_an_expectation():
    assert {p.stem for p in SUBMISSIONS.glob("*.py")} == set(EXPECTED) - {"solution", "stub"}


def test_expectations_add_up():
    for name, (expected, failing) in EXPECTED.items():
        assert set(expected) == set(FULL) and failing <= ALL, name
        for exercise, tests in TESTS.items():  # an exercise with no failing test has full marks, and back
            assert (expected[exercise] == FULL[exercise]) == (not tests & failing), (name, exercise)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_submission_scores(name, tmp_path):
    data = grade_cli(submission(SLUG, name, tmp_path), SLUG, tmp_path / "out")
    expected, failing = EXPECTED[name]
    got = {e["name"]: e["score"] for e in data["exercises"]}
    messages = {t["id"].split("::")[1]: t["message"] for t in data["tests"]}
    assert got == expected, {k: messages[k] for k in messages if messages[k]}
    assert {e["name"]: e["max_score"] for e in data["exercises"]} == FULL and data["max_score"] == 41
    assert set(messages) == ALL
    failed = {t["id"].split("::")[1] for t in data["tests"] if t["status"] != "pass"}
    assert failed == failing, {k: messages[k] for k in failed ^ failing}
    for t in data["tests"]:
        assert t["status"] in ("pass", "fail"), t  # a student fault is never a grader error
        assert "Traceback" not in t["message"] and "grader error" not in t["message"], t
        if name == "stub":
            assert "not implemented yet" in t["message"], t
    if name == "solution":
        assert data["manual"][0]["answered"] is True and not data["warnings"]
    if name == "gaming_checks":
        assert "raised ValueError" in messages["test_chunk_rejects_bad_overlap"]
        assert "raised ValueError" in messages["test_retriever_errors"]
    if name == "hostile_odd_results":
        assert "not plain data" in messages["test_chunk_matches_reference"]
        assert "timed out" in messages["test_mmr_matches_reference"]
        assert "contains NaN" in messages["test_bm25_matches_reference"]
        assert "line 1 of your prompt differs" in messages["test_build_prompt_matches_format"]
    if name == "bug_mmr_reselects":
        assert "twice" in messages["test_mmr_ties_go_to_the_lower_index"]
    if name == "bug_idf_no_smoothing":
        assert "never negative" in messages["test_bm25_common_term_counts"]
    assert data["duration_s"] < 180
