"""The worker's trusted stand-ins (``autograder/sandbox/parts/``) equal the reference, and swapping them in
for a student's names lasts exactly one call."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.proxy import Student, StudentError
from autograder.sandbox.parts import gpt as parts
from autograder.sandbox.parts import retrieval as retrieval_parts
from autograder.sandbox.supervisor import Limits, Sandbox
from autograder.student.notebook import extract
from reference import gpt as ref
from reference import retrieval as ref_retrieval

torch.set_num_threads(1)

cfgs = st.fixed_dictionaries({"vocab_size": st.integers(2, 30), "context_length": st.integers(1, 9),
                              "n_heads": st.integers(1, 3), "head_dim": st.integers(1, 5),
                              "n_layers": st.integers(1, 3), "qkv_bias": st.booleans()})


def config(c: dict) -> dict:
    c = dict(c)
    c["emb_dim"] = c["n_heads"] * c.pop("head_dim")
    return c | {"drop_rate": 0.0}


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(c=cfgs, seed=st.integers(0, 10_000), batch=st.integers(1, 3), data=st.data())
def test_parts_gpt_equals_the_reference_with_the_same_state_dict(c, seed, batch, data):
    cfg = config(c)
    torch.manual_seed(seed)
    want = ref.GPTModel(cfg).double().eval()
    got = parts.GPTModel(cfg).double().eval()
    got.load_state_dict(want.state_dict())  # same names, same shapes: strict load
    T = data.draw(st.integers(1, cfg["context_length"]), label="T")
    idx = torch.randint(0, cfg["vocab_size"], (batch, T), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(got(idx), want(idx), rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 10_000), vocab=st.integers(1, 20), k=st.integers(1, 25), p=st.floats(0.01, 1.0),
       ties=st.booleans())
def test_parts_filters_equal_the_reference(seed, vocab, k, p, ties):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, vocab, generator=g, dtype=torch.float64) * 2
    if ties:
        logits = logits.round()  # many exact ties
    assert torch.equal(parts.top_k_filter(logits, k), ref.top_k_filter(logits, k))
    probs = logits.softmax(-1)
    mass_above = ((probs.unsqueeze(-2) > probs.unsqueeze(-1)) * probs.unsqueeze(-2)).sum(-1)
    if ((mass_above - p).abs() < 1e-9).any():  # a cumulative sum and a direct sum may round apart here
        return
    assert torch.equal(parts.top_p_filter(logits, p), ref.top_p_filter(logits, p))


words = st.sampled_from(["rag", "bm25", "dense", "Vector", "the", "a", "zebra"])


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(query=st.lists(words, max_size=5), docs=st.lists(st.lists(words, max_size=8), max_size=6),
       k1=st.sampled_from([0.5, 1.5]), b=st.sampled_from([0.0, 0.75, 1.0]), seed=st.integers(0, 10_000),
       k=st.integers(0, 8), alpha=st.sampled_from([0.0, 0.3, 1.0]), zero=st.booleans())
def test_parts_retrieval_equals_the_reference(query, docs, k1, b, seed, k, alpha, zero):
    import numpy as np

    text = " ".join(w.upper() + "," for w in query)
    assert retrieval_parts.tokenize(text) == ref_retrieval.tokenize(text)
    lexical = retrieval_parts.bm25_scores(query, docs, k1, b)
    np.testing.assert_allclose(lexical, ref_retrieval.bm25_scores(query, docs, k1, b), rtol=1e-12, atol=1e-12)
    rng = np.random.default_rng(seed)
    matrix = rng.integers(-2, 3, size=(len(docs), 3)).astype(np.float32)  # small integers: exact ties happen
    qvec = np.zeros(3, np.float32) if zero else rng.integers(-2, 3, size=3).astype(np.float32)
    got, want = retrieval_parts.cosine_top_k(qvec, matrix, k), ref_retrieval.cosine_top_k(qvec, matrix, k)
    assert got[0] == want[0]
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12)
    dense = ref_retrieval.cosine_scores(qvec, matrix).tolist() if len(docs) else []
    np.testing.assert_allclose(retrieval_parts.hybrid_scores(lexical, dense, alpha),
                               ref_retrieval.hybrid_scores(lexical, dense, alpha), rtol=1e-12, atol=1e-12)


SUBMISSION = '''
import torch

class LayerNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(d))
        self.shift = torch.nn.Parameter(torch.zeros(d))
    def forward(self, x):
        return x * 0 + 42.0          # wrong on purpose

class Block(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm = LayerNorm(d)     # looked up when the block is built
    def forward(self, x):
        return self.norm(x)

def which_norm():
    return type(LayerNorm(3)).__module__

def steal_parts():
    import parts
    return 1

def parts_on_main():
    import __main__
    return [n for n, v in vars(__main__).items() if isinstance(v, dict) and "GPTModel" in v]
'''


@pytest.fixture(scope="module")
def student():
    extraction = extract({"cells": [{"cell_type": "code", "source": SUBMISSION, "metadata": {}}]})
    statements = [{"source": s.source, "cell": s.cell, "line": s.line, "names": s.names}
                  for s in extraction.statements]
    sandbox = Sandbox(statements, Limits(call_timeout_s=20), parts=("gpt",))
    yield Student(sandbox, extraction)
    sandbox.close()


def test_swapping_a_part_in_lasts_one_call(student):
    x = torch.randn(2, 4)
    assert torch.equal(student.Block(4)(x), torch.full((2, 4), 42.0))  # the student's own LayerNorm
    block = student.Block.using("LayerNorm")(4)  # built with the kit's LayerNorm
    torch.testing.assert_close(block(x), torch.nn.functional.layer_norm(x, (4,)))
    assert student.which_norm() == "submission"  # restored after the call
    assert student.which_norm.using("LayerNorm")() == "parts.gpt"


def test_kit_models_are_built_in_the_worker_and_take_weights(student):
    cfg = {"vocab_size": 11, "context_length": 6, "emb_dim": 8, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
           "qkv_bias": False}
    torch.manual_seed(0)
    reference = ref.GPTModel(cfg).eval()
    model = student.part("GPTModel", cfg)
    model.load_parameters({n: p.detach() for n, p in reference.named_parameters()})
    model.method("eval")()
    idx = torch.randint(0, 11, (2, 5))
    torch.testing.assert_close(model(idx), reference(idx).detach(), rtol=1e-5, atol=1e-5)
    gen = student.part("generator", 7)
    assert gen.method("initial_seed")() == 7


def test_parts_are_not_importable_by_submissions(student):
    with pytest.raises(StudentError, match="ModuleNotFoundError|ImportError"):
        student.steal_parts()
    assert student.parts_on_main() == []  # not a global of the worker's __main__ either


def test_a_week_without_parts_has_none():
    extraction = extract({"cells": [{"cell_type": "code", "source": "def f():\n    return 1\n", "metadata": {}}]})
    statements = [{"source": s.source, "cell": s.cell, "line": s.line, "names": s.names}
                  for s in extraction.statements]
    sandbox = Sandbox(statements, Limits(call_timeout_s=20))
    try:
        student = Student(sandbox, extraction)
        assert student.f() == 1
        with pytest.raises(RuntimeError, match="no parts"):
            student.part("GPTModel", {})
    finally:
        sandbox.close()


def test_each_parts_module_declares_the_weeks_it_implements():
    """A snapshot bundle carries a parts module when its SOLVES weeks are published (autograder/export/weeks.py),
    so SOLVES must name every week with an exercise that one of the module's parts implements."""
    from autograder.assignments import all_assignments
    from autograder.export import weeks

    topics = sorted(p.stem for p in weeks.PARTS_DIR.glob("*.py") if p.stem != "__init__")
    assert {"gpt", "training", "training_tools", "finetuning_tools", "lora_tools"} <= set(topics)
    defined = {ex.defines: slug for slug, a in all_assignments().items() for ex in a.exercises}
    for topic in topics:
        solves, names, _ = weeks.module_facts(topic)
        implemented = {defined[n] for n in names if n in defined}
        assert implemented <= set(solves), f"parts/{topic}.py implements {implemented - set(solves)}"
    assert weeks.module_facts("gpt")[0] == ("w02_attention", "w03_gpt")
    for tools in ("training_tools", "finetuning_tools", "lora_tools"):
        assert weeks.module_facts(tools)[0] == ()


def test_which_parts_a_public_bundle_may_carry():
    from autograder.export import weeks

    assert weeks.part_modules("w03_gpt") == ()  # its own GPT, never
    assert weeks.part_modules("w04_pretraining") == ("training_tools",)
    through_w03 = ("w01_tokenization", "w02_attention", "w03_gpt")
    assert weeks.part_modules("w05_finetuning", through_w03) == ("gpt", "finetuning_tools")
    assert "GPTModel" in weeks.public_parts("w06_lora", through_w03)
    assert "LoRALinear" not in weeks.public_parts("w06_lora", through_w03)  # this week's own solution
    with pytest.raises(ValueError, match="earlier week"):
        weeks.part_modules("w04_pretraining", ("w04_pretraining",))
    with pytest.raises(ValueError, match="no such week"):
        weeks.part_modules("w04_pretraining", ("w99_nothing",))
