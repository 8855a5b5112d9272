"""Per-week snapshot adjustments: where comparing a reply with the solution's would be wrong.

Replay compares every part of a reply that no recorded ``assert_close`` checked against the solution's reply.
That is right for values (ids, merges, masks, tensors) and wrong for a few measurements that correct
solutions legitimately differ in. A week needs an entry here only for those; a new week with none of them
needs nothing. Rules are data written into the snapshot (``event["compare"]``), interpreted by ``replay.py``:

* ``ignore``: places in the reply not compared (``[["pulled"]]``);
* ``below`` / ``at_most``: ``{place: bound}`` numeric bounds instead of equality;
* ``errors``: exception types accepted where the solution raised (the notebook accepts either);
* ``_TOLERANCES``: a float tolerance for replies where correct solutions legitimately round differently;
* ``unordered_rows`` / ``batch_sizes`` / ``numbers`` (``_RULES``): any order of a shuffled loader's windows
  (only its batch sizes where shuffling also decides which windows are dropped); ``ranking``: near-equal
  scores in either order, and either of them at the cut-off; a number as a float
  or a one-element tensor; ``_OWN_DESIGN``: replies whose layout is the student's choice (an optimizer's
  ``state_dict``), checked only through what the test does with them next.

Where a live test checks only a property of a reply that is not recorded as a comparison (that outputs
before a changed token stay the same), replay still compares the reply with the solution's, so a snapshot
can be stricter than live grading there; ``_PROPERTY_ONLY`` lists the tests where that would be wrong.

``part_modules`` / ``public_parts`` say which of the kit's trusted stand-ins (``sandbox/parts/``) a public
bundle may carry into the student's worker. Each parts module declares ``SOLVES``, the weeks whose exercises
it implements. A tools module (``SOLVES = ()``: holders, readers, toy models) always may; a module that
implements exercises only when the instructor has published those weeks' solutions
(``--solutions-published-through w03_gpt``, after week 3 is due), and never for the week being exported.
Tests that need any other stand-in are listed as not covered.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from ..assignments import all_assignments, get_assignment

PARTS_DIR = Path(__file__).resolve().parent.parent / "sandbox" / "parts"

VALIDATION_ERRORS = ["ValueError", "AssertionError"]  # "raise ValueError (an assert is accepted)"

# test id prefix -> what its expected-error calls accept
_ERRORS = {
    "w02_attention": {"multi_head_attention::test_mha_rejects_indivisible_heads": VALIDATION_ERRORS},
    "w03_gpt": {"top_k_filter::test_top_k_rejects_k_below_one": VALIDATION_ERRORS,
                "top_p_filter::test_top_p_edges": VALIDATION_ERRORS},
}
# tests that check only a property of a reply (its dtype): its values are graded by other tests
_PROPERTY_ONLY = {"w02_attention": ("causal_mask::test_causal_mask_dtype",)}
MEMORY_LIMIT_BYTES = 64 << 20  # week 1: encode_iterable's peak memory growth
# test id prefix -> float tolerance of replies compared with the solution's, where the bundle cannot swap in
# the kit's versions of the week's other exercises: week 4's train runs on the student's own loss and
# schedule, which may round differently (losses agree to ~1e-6 per step; 100 steps of training drift further)
_TOLERANCES = {"w04_pretraining": {"train::": 1e-3, "train::test_train_end_to_end_on_the_corpus": 5e-2,
                                   "clip_grad_norm::": 1e-3},  # a float32 norm, summed in any order
               "w07_retrieval": {"retriever::": 1e-5}}  # scores: float32 dot products in any order
_TIES = 1e-5  # week 7: cosines and scores this close may be ranked either way (the suite's float32 tolerance)
# test id prefix -> rules for every call of the test, where the notebook leaves a choice open (later entries win)
_RULES = {
    "w04_pretraining": {
        "gpt_dataset::test_dataloader_shuffled": {"unordered_rows": [["items"]]},  # any shuffle of the windows
        "gpt_dataset::test_dataloader_drop_last": {"batch_sizes": [["items"]]},  # the dropped windows are chance
        "clip_grad_norm::": {"numbers": True},  # the total norm as a tensor or a float
    },
    "w07_retrieval": {
        "cosine_top_k::": {"ranking": {"layout": "pair", "tol": _TIES}},
        "retriever::": {"ranking": {"layout": "rows", "tol": _TIES}},
        # the tie-order tests keep the exact order
        "cosine_top_k::test_cosine_top_k_ties_go_to_the_lower_index": {"ranking": None},
        "retriever::test_retriever_ties_go_to_the_lower_index": {"ranking": None},
    },
}
# test id prefix -> methods whose replies are not compared (their content is the student's own design)
_OWN_DESIGN = {"w04_pretraining": {"adamw::test_adamw_state_dict_round_trip": ("state_dict",)}}


@lru_cache(maxsize=None)
def module_facts(topic: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(SOLVES, the names in PARTS, the sibling modules it imports) of ``sandbox/parts/<topic>.py``, read
    from its source, so exporting does not run the module's import-time warm-up."""
    tree = ast.parse((PARTS_DIR / f"{topic}.py").read_text())
    solves = names = None
    siblings = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Name) and target.id == "SOLVES":
                solves = tuple(ast.literal_eval(node.value))
            if isinstance(target, ast.Name) and target.id == "PARTS":
                names = tuple(ast.literal_eval(k) for k in node.value.keys)
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            siblings.append(node.module)
    if solves is None or names is None:
        raise ValueError(f"sandbox/parts/{topic}.py must define SOLVES and PARTS")
    return solves, names, tuple(siblings)


def check_published(slug: str, published: tuple[str, ...]) -> None:
    """Only weeks before ``slug`` can have their solutions published in its bundle."""
    known = sorted(all_assignments())
    for week in published:
        if week not in known:
            raise ValueError(f"solutions published for {week}: no such week (weeks: {', '.join(known)})")
        if week >= slug:
            raise ValueError(f"solutions published for {week}: only an earlier week's solutions can be published "
                             f"in {slug}'s bundle (its own never are)")


def part_modules(slug: str, published: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The week's parts modules a public bundle may carry, given the weeks whose solutions are published."""
    check_published(slug, published)
    allowed: list[str] = []
    for topic in get_assignment(slug).parts:
        solves, _, siblings = module_facts(topic)
        if set(solves) <= set(published) and all(s in allowed for s in siblings):
            allowed.append(topic)
    return tuple(allowed)


def public_parts(slug: str, published: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names of the stand-ins in ``part_modules``: what a bundle's replay may build or swap in."""
    return tuple(name for topic in part_modules(slug, published) for name in module_facts(topic)[1])


def adjust(slug: str, tests: list[dict]) -> None:
    errors = _ERRORS.get(slug, {})
    for test in tests:
        for prefix, tol in _TOLERANCES.get(slug, {}).items():
            if test["id"].startswith(prefix):
                test["tolerance"] = max(test["tolerance"], tol)
        for event in test["events"]:
            if event["kind"] != "call":
                continue
            rules = event.setdefault("compare", {})
            for prefix, extra in _RULES.get(slug, {}).items():
                if test["id"].startswith(prefix):
                    rules.update(extra)
            for prefix, methods in _OWN_DESIGN.get(slug, {}).items():
                if test["id"].startswith(prefix) and event["attr"] in methods:
                    rules["ignore"] = [[]]
            if test["id"] in _PROPERTY_ONLY.get(slug, ()):
                rules["ignore"] = [[]]  # the recorded expect_tensor (dtype, shape) is the whole check
            for prefix, accepted in errors.items():
                if test["id"].startswith(prefix) and "error" in event["outcome"]:
                    rules["errors"] = accepted
            if event["op"] == "iterate":  # how much input was read, and memory, differ between correct solutions
                rules["ignore"] = [["pulled"], ["peak_growth_bytes"]]
                mode = event["extra"].get("mode")
                lines = next((a["$lines"] for a in event["args"] if isinstance(a, dict) and "$lines" in a), None)
                if mode == "first" and lines is not None:
                    rules["below"] = {"pulled": len(lines)}  # lazy: the first id before the whole input
                if mode == "digest":
                    rules["at_most"] = {"peak_growth_bytes": MEMORY_LIMIT_BYTES}
