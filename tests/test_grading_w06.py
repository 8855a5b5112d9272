"""Week 6 example submissions get the scores they must: each bug loses points only where it lives.

Each submission is graded the way a student's push is: the released stub notebook with the student's
code as its last cell, through ``llmkit grade`` in a separate process, two at a time.

Hidden suite, per exercise (tests and points):
    count_trainable_parameters 3   count 2, shared_once 1
    lora_linear 16                 parameters 2, init_like_peft 1, starts_as_base 1, matches_reference 3,
                                   gradients 2, dropout 2, rejects_bad_arguments 1, merge 2,
                                   merge_leaves_the_adapter_intact 2
    apply_lora 9                   adapts_exactly_the_targets 3, outputs 2, optimizer_steps 1,
                                   on_another_model 1, matches_whole_names 1, rejects_bad_targets 1
    merge_lora 4                   replaces_every_adapter 2, same_outputs 2
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from grading_support import grade_cli, submission

ROOT = Path(__file__).resolve().parent.parent
SLUG = "w06_lora"
SUBMISSIONS = ROOT / "tests" / "submissions" / SLUG
MAX = {"count_trainable_parameters": 3, "lora_linear": 16, "apply_lora": 9, "merge_lora": 4}


def t(exercise: str, name: str) -> str:
    return f"{exercise}::test_{name}"


COUNT = {t("count_trainable_parameters", n) for n in ("count_trainable_parameters",
                                                      "count_trainable_parameters_shared_once")}
LORA = {t("lora_linear", f"lora_linear_{n}") for n in (
    "parameters", "init_like_peft", "starts_as_base", "matches_reference", "gradients", "dropout",
    "rejects_bad_arguments", "merge", "merge_leaves_the_adapter_intact")}
APPLY = {t("apply_lora", f"apply_lora_{n}") for n in (
    "adapts_exactly_the_targets", "outputs", "optimizer_steps_change_only_adapters", "on_another_model",
    "matches_whole_names", "rejects_bad_targets")}
MERGE = {t("merge_lora", f"merge_lora_{n}") for n in ("replaces_every_adapter", "same_outputs")}
ALL = COUNT | LORA | APPLY | MERGE


def scores(count=3, lora=16, apply=9, merge=4) -> dict[str, int]:
    return {"count_trainable_parameters": count, "lora_linear": lora, "apply_lora": apply, "merge_lora": merge}


# submission -> (per-exercise scores, the tests that must fail)
EXPECTED = {
    "solution": (scores(), set()),
    "stub": (scores(0, 0, 0, 0), ALL),
    "correct_alternative": (scores(), set()),
    # B random: a new adapter is not its base layer (parameters 2, starts_as_base 1)
    "bug_b_random_init": (scores(lora=13), {t("lora_linear", "lora_linear_parameters"),
                                            t("lora_linear", "lora_linear_starts_as_base")}),
    # r / alpha: every comparison with a non-zero B (forward 3, gradients 2, dropout 2, merge 2)
    "bug_scaling_r_over_alpha": (scores(lora=7), {t("lora_linear", f"lora_linear_{n}") for n in (
        "matches_reference", "gradients", "dropout", "merge")}),
    # base not frozen: requires_grad (parameters 2) and a gradient reaching base.weight (gradients 2)
    "bug_base_trainable": (scores(lora=12), {t("lora_linear", "lora_linear_parameters"),
                                             t("lora_linear", "lora_linear_gradients")}),
    # merge() writes into the adapter's base: the merged layer is right, the adapter is not intact (2)
    "bug_merge_mutates": (scores(lora=14), {t("lora_linear", "lora_linear_merge_leaves_the_adapter_intact")}),
    # dropout on the base path too: only visible in training mode with dropout (2)
    "bug_dropout_on_base": (scores(lora=14), {t("lora_linear", "lora_linear_dropout")}),
    # plain endswith: "query" and "proj" adapt layers instead of raising (1)
    "bug_target_plain_suffix": (scores(apply=8), {t("apply_lora", "apply_lora_matches_whole_names")}),
    # freezing after wrapping freezes the adapters: every test of the trainable set (3 + 1 + 1 + 1)
    "bug_freeze_after_wrap": (scores(apply=3), {t("apply_lora", f"apply_lora_{n}") for n in (
        "adapts_exactly_the_targets", "optimizer_steps_change_only_adapters", "on_another_model",
        "matches_whole_names")}),
    # only direct children merged: adapters inside blocks are left (both tests, 4)
    "bug_merge_lora_top_level": (scores(merge=0), MERGE),
    # frozen parameters counted: the main count test (2); the all-trainable shared-parameter test passes
    "bug_count_all_parameters": (scores(count=1), {t("count_trainable_parameters", "count_trainable_parameters")}),
    # refusing everything, an identity merge, counting "lora_" names: nothing
    "gaming_checks": (scores(0, 0, 0, 0), ALL),
    # PEFT is banned (LoRALinear, merge_lora); the reference cannot be imported (apply_lora, count)
    "hostile_peft_and_reference": (scores(0, 0, 0, 0), ALL),
}
BANNED = {"hostile_peft_and_reference": {"lora_linear", "merge_lora"}}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("graded")

    def grade(name: str) -> dict:
        return grade_cli(submission(SLUG, name, folder), SLUG, folder / f"out-{name}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(grade, name) for name in EXPECTED}
        return {name: future.result() for name, future in futures.items()}


def test_every_example_submission_has_an_expectation():
    assert {p.stem for p in SUBMISSIONS.glob("*.py")} == set(EXPECTED) - {"solution", "stub"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_submission_scores(name, results):
    data = results[name]
    want, failing = EXPECTED[name]
    got = {e["name"]: (e["score"], e["max_score"]) for e in data["exercises"]}
    assert got == {ex: (want[ex], MAX[ex]) for ex in MAX}, got
    failed = {x["id"].split("[")[0] for x in data["tests"] if x["status"] != "pass"}
    assert failed == failing
    assert {x["id"].split("[")[0] for x in data["tests"]} == ALL
    for x in data["tests"]:
        assert "Traceback" not in x["message"] and "grader error" not in x["message"], x
        if name == "stub":
            assert "not implemented yet" in x["message"], x
    banned = {e["name"] for e in data["exercises"] if e["banned"]}
    assert banned == BANNED.get(name, set()), banned
    assert data["duration_s"] < 120


def test_failure_messages_say_what_is_wrong(results):
    messages = {name: {x["id"]: x["message"] for x in data["tests"]} for name, data in results.items()}
    assert "lora_B must start as zeros" in messages["bug_b_random_init"][t("lora_linear", "lora_linear_parameters")]
    assert "a gradient reached base.weight" in messages["bug_base_trainable"][t("lora_linear", "lora_linear_gradients")]
    assert "changed after merge()" in \
        messages["bug_merge_mutates"][t("lora_linear", "lora_linear_merge_leaves_the_adapter_intact")]
    assert "never on the base path" in messages["bug_dropout_on_base"][t("lora_linear", "lora_linear_dropout")]
    assert "was accepted" in messages["bug_target_plain_suffix"][t("apply_lora", "apply_lora_matches_whole_names")]
    assert "trainable parameters should be exactly" in \
        messages["bug_freeze_after_wrap"][t("apply_lora", "apply_lora_adapts_exactly_the_targets")]
    assert "however deep" in messages["bug_merge_lora_top_level"][t("merge_lora", "merge_lora_replaces_every_adapter")]
    assert "smallest failing input" in messages["bug_scaling_r_over_alpha"][t("lora_linear", "lora_linear_matches_reference")]
    assert "right count is different" in \
        messages["bug_count_all_parameters"][t("count_trainable_parameters", "count_trainable_parameters")]
