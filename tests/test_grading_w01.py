"""Week 1 example submissions get the scores they must: each bug loses points only where it lives.

Each submission is graded the way a student's push is: the released stub notebook with the student's
code as its last cell, through ``llmkit grade`` in a separate process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.demo import _submission_notebook

ROOT = Path(__file__).resolve().parent.parent
SLUG, NOTEBOOK = "w01_tokenization", "tokenization.ipynb"
SUBMISSIONS = ROOT / "tests" / "submissions" / SLUG

TRAIN = {"test_train_matches_reference_ascii", "test_train_matches_reference_unicode", "test_train_special_tokens",
         "test_train_fixed_corpus", "test_train_rejects_small_vocab", "test_train_speed"}
TOKENIZER = {"test_encode_matches_reference", "test_encode_production_vocabulary", "test_decode_matches_reference",
             "test_round_trip", "test_special_tokens_longest_first", "test_encode_iterable_equals_encode",
             "test_encode_iterable_is_lazy", "test_encode_iterable_memory", "test_unknown_special_token_is_added"}
TRAIN_OUTPUT = TRAIN - {"test_train_rejects_small_vocab"}  # every test that compares merges

# submission -> (train_bpe score, bpe_tokenizer score, the tests that must fail); max 12 and 14
EXPECTED = {
    "solution": (12, 14, set()),
    "stub": (0, 0, TRAIN | TOKENIZER),
    "correct_alternative": (12, 14, set()),
    # decoding token by token breaks characters split across tokens: decode and the round trip
    "bug_decode_per_token": (12, 11, {"test_decode_matches_reference", "test_round_trip"}),
    # merges get ids 256.. before the special tokens: only runs with special tokens differ (layout)
    "bug_ids_wrong_order": (6, 14, {"test_train_special_tokens", "test_train_fixed_corpus", "test_train_speed"}),
    # pairs counted across pre-token boundaries: every merge list differs; the ValueError point stays
    "bug_merge_across_pretokens": (1, 14, TRAIN_OUTPUT),
    # ties to the first pair seen instead of the greatest: every merge list differs
    "bug_tie_first_occurrence": (1, 14, TRAIN_OUTPUT),
    # right answers, far too slow on 300 KB: the speed item only
    "bug_quadratic_recount": (10, 14, {"test_train_speed"}),
    # refusing every vocab_size and yielding an id before reading: no point for either check
    "gaming_checks": (0, 0, TRAIN | TOKENIZER),
    # special tokens trained on and split by encode: special-token training and encoding tests
    "bug_special_tokens_merged": (6, 4, {"test_train_special_tokens", "test_train_fixed_corpus", "test_train_speed",
                                         "test_encode_matches_reference", "test_encode_production_vocabulary",
                                         "test_special_tokens_longest_first", "test_encode_iterable_equals_encode",
                                         "test_encode_iterable_memory", "test_unknown_special_token_is_added"}),
}


@pytest.fixture(scope="module")
def stub(tmp_path_factory) -> Path:
    from autograder.release import build_release

    out = tmp_path_factory.mktemp("release") / "repo"
    build_release(ROOT / "assignments", out)
    return out / SLUG / NOTEBOOK


def _notebook(name: str, stub: Path, tmp: Path) -> Path:
    if name == "solution":
        return ROOT / "assignments" / SLUG / NOTEBOOK
    if name == "stub":
        return stub
    return _submission_notebook(stub, (SUBMISSIONS / f"{name}.py").read_text(), tmp / f"{name}.ipynb")


def test_every_example_submission_has_an_expectation():
    assert {p.stem for p in SUBMISSIONS.glob("*.py")} == set(EXPECTED) - {"solution", "stub"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_submission_scores(name, stub, tmp_path):
    notebook = _notebook(name, stub, tmp_path)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "autograder.cli", "grade", str(notebook), "-a", SLUG,
                           "--out", str(out), "--format", "json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "result.json").read_text())
    train, tokenizer, failing = EXPECTED[name]
    scores = {e["name"]: (e["score"], e["max_score"]) for e in data["exercises"]}
    assert scores == {"train_bpe": (train, 12), "bpe_tokenizer": (tokenizer, 14)}, scores
    failed = {t["id"].split("::")[1] for t in data["tests"] if t["status"] != "pass"}
    assert failed == failing
    for t in data["tests"]:
        assert "Traceback" not in t["message"] and "grader error" not in t["message"], t
        if name == "stub":
            assert "not implemented yet" in t["message"], t
    if name == "gaming_checks":
        messages = {t["id"].split("::")[1]: t["message"] for t in data["tests"]}
        assert "raised ValueError" in messages["test_train_rejects_small_vocab"]
        assert "not the first id of encode" in messages["test_encode_iterable_is_lazy"]
    if name == "bug_quadratic_recount":
        speed = next(t for t in data["tests"] if t["id"].endswith("test_train_speed"))
        assert "reference took" in speed["message"] or "the reference" in speed["message"]
    assert data["duration_s"] < 120
