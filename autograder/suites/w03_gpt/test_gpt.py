"""Hidden tests, week 3 (the GPT model and decoding). 31 points. Contract: docs/w03_contract.md.

Every module is graded alone: ``.using(...)`` swaps the kit's correct ``LayerNorm``, ``GELU``,
``FeedForward``, ``MultiHeadAttention`` and ``TransformerBlock`` (``autograder/sandbox/parts/gpt.py``) in
for the student's while their module is built, and the decoding functions run on the kit's
``GPTModel`` holding the reference's weights. The reference runs in float64 on the same float32 inputs
and weights; tolerances are ``f32_tol(scale)`` with the scale next to each test.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.compare import assert_close, expect_tensor, f32_tol, graded
from autograder.proxy import StudentError
from reference import gpt as ref

torch.set_num_threads(1)

points = pytest.mark.points
seeds = st.integers(0, 2**31 - 1)
PARTS = ("LayerNorm", "GELU", "FeedForward", "MultiHeadAttention", "TransformerBlock")


def others(*mine: str) -> tuple[str, ...]:
    """The kit's parts to swap in while grading the exercise that defines ``mine``."""
    return tuple(p for p in PARTS if p not in mine)


def randn(shape, seed: int, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed)) * scale).float()


def float_weights(module: torch.nn.Module) -> dict:
    return {n: p.detach().float() for n, p in module.named_parameters()}


def randomise(module: torch.nn.Module, seed: int, scale: float = 1.0) -> torch.nn.Module:
    """Non-trivial weights for every parameter (LayerNorm's ones and zeros included), in float64."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale / math.sqrt(max(p.shape[-1], 1)) + (p.dim() == 1) * 0.5)
    return module.double().eval()


def load(remote_module, reference: torch.nn.Module):
    """Give the student's module the reference's weights and put it in eval mode."""
    remote_module.load_parameters(float_weights(reference))
    remote_module.method("eval")()
    return remote_module


def check_grads(got: dict, reference: torch.nn.Module, tol: float, what: str) -> None:
    for name, p in reference.named_parameters():
        grad = got["param_grads"].get(name)
        if grad is None:
            raise AssertionError(f"no gradient reached {what}'s {name}: is it used in forward?")
        assert_close(grad, p.grad, atol=tol, what=f"gradient of {name}")


model_cfgs = st.fixed_dictionaries({
    "vocab_size": st.integers(2, 40), "context_length": st.integers(1, 10), "n_heads": st.integers(1, 3),
    "head_dim": st.integers(1, 5), "n_layers": st.integers(1, 3), "qkv_bias": st.booleans(),
    "drop_rate": st.sampled_from([0.0, 0.1, 0.5]),
})


def config(c: dict) -> dict:
    c = dict(c)
    c["emb_dim"] = c["n_heads"] * c.pop("head_dim")
    return c


# ------------------------------------------------------------------------------------------- LayerNorm
ln_draws = dict(d=st.integers(1, 32), lead=st.lists(st.integers(1, 4), min_size=1, max_size=2), seed=seeds,
                scale=st.sampled_from([0.1, 1.0, 10.0]), offset=st.sampled_from([0.0, 3.0]))


def ln_case(student, d, lead, seed, scale, offset):
    reference = randomise(ref.LayerNorm(d), seed)
    theirs = load(student.LayerNorm(d), reference)
    x = randn([*lead, d], seed + 1, scale) + offset
    spread = float(x.std(-1, unbiased=False).min()) if d > 1 else 1.0
    amplify = 1.0 + float(x.abs().max()) / max(spread, 1e-3)
    size = float(reference.scale.abs().max() + reference.shift.abs().max())
    return reference, theirs, x, f32_tol(4 * amplify * size * math.sqrt(d))


@points(1)
@pytest.mark.exercise("layer_norm")
@graded(max_examples=30)
@given(**ln_draws)
def test_layer_norm_matches_reference(student, d, lead, seed, scale, offset):
    """with the same scale and shift, LayerNorm(x) equals the reference: biased variance, eps 1e-5
    (tolerance f32_tol(4 * sqrt(d) * (1 + max|x| / std) * (max|scale| + max|shift|)))"""
    reference, theirs, x, tol = ln_case(student, d, lead, seed, scale, offset)
    out = theirs(x)
    expect_tensor(out, "LayerNorm(x)", shape=x.shape, floating=True)
    with torch.no_grad():
        assert_close(out, reference(x.double()), atol=tol, what="LayerNorm output")
        # the independent oracle: PyTorch's own layer norm with the same parameters
        builtin = torch.nn.functional.layer_norm(x.double(), (d,), reference.scale, reference.shift, 1e-5)
        assert_close(out, builtin, atol=tol, what="LayerNorm output (against torch.nn.LayerNorm)")


@points(1)
@pytest.mark.exercise("layer_norm")
@graded(max_examples=10)
@given(**ln_draws)
def test_layer_norm_gradients(student, d, lead, seed, scale, offset):
    """gradients of x, scale and shift equal the reference's (tolerance 10 times the forward one)"""
    reference, theirs, x, tol = ln_case(student, d, lead, seed, scale, offset)
    cot = randn(x.shape, seed + 2)
    got = theirs.vjp(x, cotangent=cot)
    xd = x.double().requires_grad_(True)
    (reference(xd) * cot.double()).sum().backward()
    assert_close(got["arg_grads"][0], xd.grad, atol=10 * tol, what="gradient of x")
    check_grads(got, reference, 10 * tol, "LayerNorm")


@points(1)
@pytest.mark.exercise("layer_norm")
def test_layer_norm_starts_as_the_identity_normaliser(student):
    """a fresh LayerNorm(d) has scale 1 and shift 0 (checked through its output)"""
    x = randn((3, 6), 5, 2.0) + 1
    out = student.LayerNorm(6)(x)
    assert_close(out, torch.nn.functional.layer_norm(x.double(), (6,)), atol=f32_tol(100), what="LayerNorm(6)(x)")


# ------------------------------------------------------------------------------------------------ GELU
@points(1)
@pytest.mark.exercise("gelu")
@graded(max_examples=20)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), seed=seeds, scale=st.sampled_from([0.5, 2.0, 6.0]))
def test_gelu_matches_tanh_approximation(student, shape, seed, scale):
    """GELU()(x) equals 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) and torch's GELU(approximate="tanh")
    (tolerance f32_tol(scale))"""
    x = randn(shape, seed, scale)
    out = student.GELU()(x)
    expect_tensor(out, "GELU()(x)", shape=x.shape, floating=True)
    assert_close(out, ref.GELU()(x.double()), atol=f32_tol(4 * scale), what="GELU output")
    builtin = torch.nn.functional.gelu(x.double(), approximate="tanh")
    assert_close(out, builtin, atol=f32_tol(4 * scale), what="GELU output (against torch's tanh GELU)")


@points(1)
@pytest.mark.exercise("gelu")
@graded(max_examples=10)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=2), seed=seeds, scale=st.sampled_from([0.5, 2.0, 6.0]))
def test_gelu_gradient_and_extremes(student, shape, seed, scale):
    """the gradient equals the reference's, and GELU(+-30) is finite: x (or 0) (tolerance f32_tol(4 * scale))"""
    x = randn(shape, seed, scale)
    got = student.GELU().vjp(x, cotangent=torch.ones_like(x))
    xd = x.double().requires_grad_(True)
    ref.GELU()(xd).sum().backward()
    assert_close(got["arg_grads"][0], xd.grad, atol=f32_tol(4 * scale), what="gradient of GELU")
    far = torch.tensor([-30.0, 30.0])
    assert_close(student.GELU()(far), torch.tensor([0.0, 30.0], dtype=torch.float64), atol=f32_tol(30),
                 what="GELU at -30 and 30")


# ---------------------------------------------------------------------------------------- FeedForward
@points(2)
@pytest.mark.exercise("feed_forward")
@graded(max_examples=15)
@given(d=st.integers(1, 12), lead=st.lists(st.integers(1, 4), min_size=1, max_size=2), seed=seeds)
def test_feed_forward_matches_reference(student, d, lead, seed):
    """layers = Linear(d, 4d), GELU, Linear(4d, d): output and gradients equal the reference's
    (tolerance f32_tol(40 * d), gradients f32_tol(400 * d))"""
    cfg = {"emb_dim": d}
    reference = randomise(ref.FeedForward(cfg), seed)
    theirs = load(student.FeedForward.using(*others("FeedForward"))(cfg), reference)
    x = randn([*lead, d], seed + 1)
    cot = randn([*lead, d], seed + 2)
    got = theirs.vjp(x, cotangent=cot)
    xd = x.double().requires_grad_(True)
    want = reference(xd)
    expect_tensor(got["out"], "FeedForward(x)", shape=x.shape, floating=True)
    assert_close(got["out"], want.detach(), atol=f32_tol(40 * d), what="FeedForward output")
    (want * cot.double()).sum().backward()
    assert_close(got["arg_grads"][0], xd.grad, atol=f32_tol(400 * d), what="gradient of x")
    check_grads(got, reference, f32_tol(400 * d), "FeedForward")


# ----------------------------------------------------------------------------------- TransformerBlock
def block_case(student, c, seed):
    cfg = config(c)
    torch.manual_seed(seed % 1000)
    reference = randomise(ref.TransformerBlock(cfg), seed)
    theirs = load(student.TransformerBlock.using(*others("TransformerBlock"))(cfg), reference)
    return cfg, reference, theirs


@points(2)
@pytest.mark.exercise("transformer_block")
@graded(max_examples=20)
@given(c=model_cfgs, seed=seeds, batch=st.integers(1, 3), data=st.data())
def test_block_matches_reference(student, c, seed, batch, data):
    """pre-norm block with residuals: x + att(norm1(x)), then + ff(norm2(x)); equals the reference in eval
    mode (tolerance f32_tol(100 * emb_dim))"""
    cfg, reference, theirs = block_case(student, c, seed)
    T = data.draw(st.integers(1, cfg["context_length"]), label="T")
    x = randn((batch, T, cfg["emb_dim"]), seed + 1)
    out = theirs(x)
    expect_tensor(out, "TransformerBlock(x)", shape=x.shape, floating=True)
    with torch.no_grad():
        assert_close(out, reference(x.double()), atol=f32_tol(100 * cfg["emb_dim"]), what="TransformerBlock output")


@points(1)
@pytest.mark.exercise("transformer_block")
@graded(max_examples=10)
@given(c=model_cfgs, seed=seeds, data=st.data())
def test_block_gradients(student, c, seed, data):
    """gradients of the input and of every weight equal the reference's (tolerance f32_tol(1000 * emb_dim))"""
    cfg, reference, theirs = block_case(student, c, seed)
    T = data.draw(st.integers(1, cfg["context_length"]), label="T")
    x = randn((2, T, cfg["emb_dim"]), seed + 1)
    cot = randn(x.shape, seed + 2)
    got = theirs.vjp(x, cotangent=cot)
    xd = x.double().requires_grad_(True)
    (reference(xd) * cot.double()).sum().backward()
    tol = f32_tol(1000 * cfg["emb_dim"])
    assert_close(got["arg_grads"][0], xd.grad, atol=tol, what="gradient of x")
    check_grads(got, reference, tol, "TransformerBlock")


@points(1)
@pytest.mark.exercise("transformer_block")
def test_block_dropout_is_off_in_eval_mode(student):
    """with drop_rate 0.5, eval mode equals the reference: the shortcut dropout is an nn.Dropout (or checks
    self.training) (tolerance f32_tol(800))"""
    cfg = {"vocab_size": 5, "context_length": 6, "emb_dim": 8, "n_heads": 2, "n_layers": 1, "drop_rate": 0.5,
           "qkv_bias": False}
    reference = randomise(ref.TransformerBlock(cfg), 11)
    theirs = load(student.TransformerBlock.using(*others("TransformerBlock"))(cfg), reference)
    x = randn((2, 6, 8), 3)
    with torch.no_grad():
        assert_close(theirs(x), reference(x.double()), atol=f32_tol(800), what="TransformerBlock output in eval mode")


# -------------------------------------------------------------------------------------------- GPTModel
def model_case(student, c, seed):
    cfg = config(c)
    torch.manual_seed(seed % 1000)
    reference = randomise(ref.GPTModel(cfg), seed, scale=2.0)
    theirs = load(student.GPTModel.using(*PARTS)(cfg), reference)
    return cfg, reference, theirs


def tokens(cfg, batch, T, seed) -> torch.Tensor:
    return torch.randint(0, cfg["vocab_size"], (batch, T), generator=torch.Generator().manual_seed(seed))


@points(2)
@pytest.mark.exercise("gpt_model")
@graded(max_examples=20)
@given(c=model_cfgs, seed=seeds, batch=st.integers(1, 3), data=st.data())
def test_model_matches_reference(student, c, seed, batch, data):
    """logits (B, T, vocab_size) equal the reference's for every T up to context_length: token plus
    position embeddings (positions 0..T-1), the blocks, final_norm, out_head (tolerance f32_tol(500 * emb_dim))"""
    cfg, reference, theirs = model_case(student, c, seed)
    T = data.draw(st.integers(1, cfg["context_length"]), label="T")
    idx = tokens(cfg, batch, T, seed)
    out = theirs(idx)
    expect_tensor(out, "GPTModel(in_idx)", shape=(batch, T, cfg["vocab_size"]), floating=True)
    with torch.no_grad():
        assert_close(out, reference(idx), atol=f32_tol(500 * cfg["emb_dim"]), what="GPTModel logits")


@points(1)
@pytest.mark.exercise("gpt_model")
@graded(max_examples=8)
@given(c=model_cfgs, seed=seeds, data=st.data())
def test_model_gradients(student, c, seed, data):
    """gradients of every weight equal the reference's (tolerance f32_tol(5000 * emb_dim))"""
    cfg, reference, theirs = model_case(student, c, seed)
    T = data.draw(st.integers(1, cfg["context_length"]), label="T")
    idx = tokens(cfg, 2, T, seed)
    cot = randn((2, T, cfg["vocab_size"]), seed + 2)
    got = theirs.vjp(idx, cotangent=cot)
    (reference(idx) * cot.double()).sum().backward()
    check_grads(got, reference, f32_tol(5000 * cfg["emb_dim"]), "GPTModel")


@points(1)
@pytest.mark.exercise("gpt_model")
@graded(max_examples=10)
@given(c=model_cfgs)
def test_model_parameters_are_the_books(student, c):
    """the parameters are exactly the reference's, by name and shape (so the parameter count matches), and
    out_head has no bias"""
    cfg = config(c)
    theirs = student.GPTModel.using(*PARTS)(cfg)
    want = {n: p.detach().float() for n, p in ref.GPTModel(cfg).named_parameters()}
    theirs.load_parameters(want)  # names the missing and unexpected parameters, or a wrong shape


# ------------------------------------------------------------------------------------------- filters
logit_draws = dict(batch=st.integers(1, 3), vocab=st.integers(1, 24), seed=seeds, ties=st.booleans(),
                   neg_inf=st.booleans())


def make_logits(batch, vocab, seed, ties, neg_inf) -> torch.Tensor:
    x = randn((batch, vocab), seed, 3.0)
    if ties:
        x = x.round()  # many exact ties
    if neg_inf and vocab > 1:  # an entry already removed by an earlier filter
        x[:, 0] = float("-inf")
    return x


def check_filtered(out, logits: torch.Tensor, keep: torch.Tensor, what: str, either: torch.Tensor | None = None):
    """``out`` keeps exactly ``keep`` (unchanged) and sets the rest to -inf; ``either`` marks entries
    where both decisions are accepted."""
    out = expect_tensor(out, what, shape=logits.shape, floating=True)
    removed = torch.isneginf(out)
    kept_ok = torch.where(removed, torch.ones_like(removed), out.double() == logits.double())
    if not kept_ok.all():
        i = tuple(int(v) for v in (~kept_ok).nonzero()[0])
        raise AssertionError(f"{what}: a kept entry was changed (first at index {i}); kept logits must be returned "
                             "unchanged, removed ones as -inf")
    wrong = removed == keep
    if either is not None:
        wrong &= ~either
    wrong &= ~torch.isneginf(logits)  # already -inf: stays -inf either way
    if wrong.any():
        i = tuple(int(v) for v in wrong.nonzero()[0])
        kept, dropped = int((wrong & ~removed).sum()), int((wrong & removed).sum())
        raise AssertionError(f"{what}: {kept} entries kept that should be removed and {dropped} removed that should be "
                             f"kept (first at index {i})")


@points(2)
@pytest.mark.exercise("top_k_filter")
@graded(max_examples=40)
@given(**logit_draws, k=st.integers(1, 30))
def test_top_k_matches_reference(student, batch, vocab, seed, ties, neg_inf, k):
    """keeps every logit >= the k-th largest of its row (ties kept), -inf elsewhere; k >= vocab keeps all"""
    logits = make_logits(batch, vocab, seed, ties, neg_inf)
    keep = torch.isfinite(ref.top_k_filter(logits.double(), k))
    check_filtered(student.top_k_filter(logits, k), logits, keep, f"top_k_filter(logits, k={k})")


@points(1)
@pytest.mark.exercise("top_k_filter")
def test_top_k_rejects_k_below_one(student):
    """k = 0 raises ValueError"""
    try:
        student.top_k_filter(torch.zeros(1, 4), 0)
    except StudentError as exc:
        if exc.type_name not in ("ValueError", "AssertionError"):
            raise AssertionError(f"top_k_filter(logits, 0) raised {exc.type_name}; expected ValueError") from None
        return
    raise AssertionError("top_k_filter(logits, 0) was accepted; k must be at least 1 (raise ValueError)")


def mass_above(logits: torch.Tensor) -> torch.Tensor:
    probs = torch.softmax(logits.double(), dim=-1)
    return ((probs.unsqueeze(-2) > probs.unsqueeze(-1)) * probs.unsqueeze(-2)).sum(-1)


@points(2)
@pytest.mark.exercise("top_p_filter")
@graded(max_examples=40)
@given(**logit_draws, p=st.sampled_from([0.05, 0.3, 0.5, 0.75, 0.9, 0.99]))
def test_top_p_matches_reference(student, batch, vocab, seed, ties, neg_inf, p):
    """keeps token j iff the probability of the tokens strictly more likely than j is < p (the smallest
    nucleus reaching p, ties at its edge kept); either decision within 1e-6 of p is accepted"""
    logits = make_logits(batch, vocab, seed, ties, neg_inf)
    keep = torch.isfinite(ref.top_p_filter(logits.double(), p))
    either = (mass_above(logits) - p).abs() < 1e-6
    check_filtered(student.top_p_filter(logits, p), logits, keep, f"top_p_filter(logits, p={p})", either)


@points(1)
@pytest.mark.exercise("top_p_filter")
def test_top_p_edges(student):
    """p = 1 keeps everything, a tiny p keeps only the most likely token (all of them when tied), and p
    outside (0, 1] raises ValueError"""
    logits = torch.tensor([[1.0, 3.0, -2.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0, 0.0]])
    check_filtered(student.top_p_filter(logits, 1.0), logits, torch.ones(2, 5, dtype=torch.bool), "top_p_filter(p=1)")
    keep = torch.tensor([[False, True, False, True, False], [True] * 5])
    check_filtered(student.top_p_filter(logits, 1e-4), logits, keep, "top_p_filter(p=0.0001)")
    one = torch.tensor([[0.0, 2.0, 1.0]])
    check_filtered(student.top_p_filter(one, 0.5), one, torch.tensor([[False, True, False]]), "top_p_filter(p=0.5)")
    for bad in (0.0, 1.5):
        try:
            student.top_p_filter(logits, bad)
        except StudentError as exc:
            if exc.type_name not in ("ValueError", "AssertionError"):
                raise AssertionError(f"top_p_filter(logits, {bad}) raised {exc.type_name}; expected ValueError") from None
            continue
        raise AssertionError(f"top_p_filter(logits, {bad}) was accepted; p must be in (0, 1] (raise ValueError)")


# ------------------------------------------------------------------------------------------- decoding
DECODE_CFG = {"vocab_size": 24, "context_length": 8, "emb_dim": 12, "n_heads": 3, "n_layers": 2, "drop_rate": 0.0,
              "qkv_bias": True}


def decoding_pair(student, seed: int, context_length: int = 8):
    """The reference in float64 and the kit's GPTModel in the worker, with the same weights."""
    cfg = dict(DECODE_CFG, context_length=context_length)
    torch.manual_seed(seed % 1000)
    reference = randomise(ref.GPTModel(cfg), seed, scale=3.0)  # spread-out logits: near-ties are rare
    model = student.part("GPTModel", cfg)
    model.load_parameters(float_weights(reference))
    model.method("eval")()
    return reference, model


def check_greedy(reference, prompt: torch.Tensor, out, new: int, context_size: int, what: str, eos_id=None) -> None:
    """``out`` is the prompt followed by a greedy continuation: every new token is the most likely one
    (within float32 rounding) given what precedes it, cropped to ``context_size``."""
    B, T = prompt.shape
    out = expect_tensor(out, what, floating=False)
    if out.dim() != 2 or out.shape[0] != B:
        raise AssertionError(f"{what} has shape {tuple(out.shape)}; expected ({B}, prompt length + new tokens)")
    if not torch.equal(out[:, :T].long(), prompt):
        raise AssertionError(f"{what} does not start with the prompt: return the prompt followed by the new tokens")
    n = out.shape[1] - T
    if n > new or (n < new and eos_id is None):
        raise AssertionError(f"{what} added {n} tokens; expected max_new_tokens = {new}")
    for step in range(n + (1 if n < new else 0)):
        with torch.no_grad():
            logits = ref.next_token_logits(reference, out[:, :T + step].long(), context_size)
        best = logits.max(-1).values
        tol = f32_tol(2000) * (1 + float(best.abs().max()))
        if step == n:  # stopped early: the next token must have been eos
            if float(logits[0, eos_id]) < float(best[0]) - tol:
                raise AssertionError(f"{what} stopped after {n} of {new} tokens, but the next greedy token is not eos_id")
            return
        tok = out[:, T + step].long()
        if eos_id is not None and bool((tok == eos_id).any()) and step < n - 1:
            raise AssertionError(f"{what} continued after producing eos_id at new token {step}: stop there")
        if eos_id is not None and step == n - 1 and bool((tok == eos_id).all()):
            return  # eos appended as the last token: accepted
        chosen = logits.gather(-1, tok[:, None]).squeeze(-1)
        if (chosen < best - tol).any():
            row = int((chosen < best - tol).nonzero()[0])
            context = "the last context_size tokens" if T + step > context_size else "the sequence so far"
            raise AssertionError(f"{what}: new token {step} of row {row} is not the most likely next token given "
                                 f"{context} (its logit is {float(best[row] - chosen[row]):.3g} below the maximum)")


@points(2)
@pytest.mark.exercise("generate")
@graded(max_examples=12)
@given(seed=seeds, batch=st.integers(1, 3), T=st.integers(1, 8), new=st.integers(0, 6))
def test_greedy_generation(student, seed, batch, T, new):
    """temperature 0 picks the most likely token at every step, returning the prompt plus the new tokens"""
    reference, model = decoding_pair(student, seed)
    prompt = tokens(DECODE_CFG, batch, T, seed)
    out = student.generate.using("top_k_filter", "top_p_filter")(model, prompt, new, 8)
    check_greedy(reference, prompt, out, new, 8, f"generate(model, idx ({batch}x{T}), {new}, 8)")


@points(1)
@pytest.mark.exercise("generate")
@graded(max_examples=10)
@given(seed=seeds, T=st.integers(1, 14), new=st.integers(1, 8), context_size=st.integers(2, 8))
def test_generation_crops_the_context(student, seed, T, new, context_size):
    """the model sees only the last context_size tokens at each step (prompts and outputs longer than the
    context are cropped)"""
    reference, model = decoding_pair(student, seed)
    prompt = tokens(DECODE_CFG, 1, T, seed)
    out = student.generate.using("top_k_filter", "top_p_filter")(model, prompt, new, context_size)
    check_greedy(reference, prompt, out, new, context_size,
                 f"generate(model, idx (1x{T}), {new}, context_size={context_size})")


@points(1)
@pytest.mark.exercise("generate")
@graded(max_examples=8)
@given(seed=seeds, T=st.integers(1, 4), at=st.integers(0, 5))
def test_generation_stops_at_eos(student, seed, T, at):
    """with eos_id, generation stops when the chosen token is eos_id (without it; appending it is accepted too)"""
    reference, model = decoding_pair(student, seed)
    prompt = tokens(DECODE_CFG, 1, T, seed)
    greedy = ref.generate(reference, prompt, 6, 8)
    eos = int(greedy[0, T + at])  # a token the greedy path produces
    out = student.generate.using("top_k_filter", "top_p_filter")(model, prompt, 10, 8, eos_id=eos)
    check_greedy(reference, prompt, out, 10, 8, f"generate(..., eos_id={eos})", eos_id=eos)


SAMPLING = [(0.5, None, True), (2.0, 10, True), (1.0, 3, False), (0.7, None, False)]  # temperature, top_k, top_p?


@points(1)
@pytest.mark.exercise("generate")
@graded(max_examples=3)
@given(seed=seeds, level=st.floats(0.0, 1.0))
def test_sampling_distribution(student, seed, level):
    """for each of 4 settings of temperature, top_k and top_p, 4,000 draws follow
    softmax(top_p(top_k(logits / temperature))): filtered tokens are never drawn and every count lies within
    6 standard deviations (+1) of its expectation (a correct solution fails with probability below 1e-6)"""
    reference, model = decoding_pair(student, seed)
    prompt = tokens(DECODE_CFG, 1, 1 + seed % 4, seed)
    for temperature, top_k, use_p in SAMPLING:
        with torch.no_grad():
            logits = ref.next_token_logits(reference, prompt, 8) / temperature
        if top_k is not None:
            logits = ref.top_k_filter(logits, top_k)
        top_p = None
        if use_p:  # a threshold half-way between two nucleus edges, so rounding cannot move the edge
            edges = torch.unique(mass_above(logits)[torch.isfinite(logits)])
            edges = torch.cat([edges, torch.ones(1, dtype=edges.dtype)])
            i = min(int(level * (len(edges) - 1)), len(edges) - 2)
            top_p = float((edges[i] + edges[i + 1]) / 2)
            logits = ref.top_p_filter(logits, top_p)
        check_sampling(student, model, prompt, torch.softmax(logits, -1)[0], seed,
                       dict(temperature=temperature, top_k=top_k, top_p=top_p))


def check_sampling(student, model, prompt, probs, seed, options: dict, n: int = 4000) -> None:
    gen = student.part("generator", seed)
    out = student.generate.using("top_k_filter", "top_p_filter")(
        model, prompt.expand(n, -1).contiguous(), 1, 8, generator=gen, **options)
    out = expect_tensor(out, "generate(...)", shape=(n, prompt.shape[1] + 1))
    counts = torch.bincount(out[:, -1].long().clamp(0, DECODE_CFG["vocab_size"] - 1),
                            minlength=DECODE_CFG["vocab_size"]).double()
    what = "sampling with " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items())
    if counts[probs == 0].sum() > 0:
        raise AssertionError(f"{what}: drew tokens that top-k/top-p remove (or that follow a different order of "
                             "temperature, top-k and top-p)")
    sd = (n * probs * (1 - probs)).sqrt()
    off = (counts - n * probs).abs() > 6 * sd + 1
    if off.any():
        tok = int(off.nonzero()[0])
        raise AssertionError(f"{what}: token {tok} was drawn {int(counts[tok])} times in {n}; expected about "
                             f"{float(n * probs[tok]):.0f} (divide by the temperature, then top-k, then top-p, softmax)")


@points(1)
@pytest.mark.exercise("generate")
def test_sampling_uses_the_generator(student):
    """two runs with generators seeded alike give the same tokens, and different seeds give different ones"""
    _, model = decoding_pair(student, 4)
    prompt = tokens(DECODE_CFG, 64, 2, 4)

    def run(seed):
        return student.generate.using("top_k_filter", "top_p_filter")(
            model, prompt, 3, 8, temperature=1.5, generator=student.part("generator", seed))

    a, b, c = run(1), run(1), run(2)
    if not torch.equal(a, b):
        raise AssertionError("two runs with torch.Generator().manual_seed(1) gave different tokens: pass `generator` "
                             "to torch.multinomial")
    if torch.equal(a, c):
        raise AssertionError("runs with different seeds gave the same 192 tokens: is the sampling random?")


# ------------------------------------------------------------------------------------ generate_cached
@points(2)
@pytest.mark.exercise("generate_cached")
@graded(max_examples=10)
@given(seed=seeds, T=st.integers(1, 6), extra=st.integers(0, 6), batch=st.integers(1, 2))
def test_cached_greedy_generation(student, seed, T, extra, batch):
    """with the sequence within the context, greedy tokens are generate's, and each position is embedded once
    (the cache is used)"""
    reference, model = decoding_pair(student, seed, context_length=12)
    new = min(extra, 12 - T)
    prompt = tokens(DECODE_CFG, batch, T, seed)
    student.part("positions_embedded", model)  # reset the kit model's counter
    out = student.generate_cached.using("top_k_filter", "top_p_filter")(model, prompt, new, 12)
    check_greedy(reference, prompt, out, new, 12, f"generate_cached(model, idx ({batch}x{T}), {new}, 12)")
    seen = student.part("positions_embedded", model)
    if seen > T + new:
        raise AssertionError(f"generate_cached embedded {seen} positions for a {T}-token prompt and {new} new tokens; "
                             f"with a KV cache each position is embedded once (at most {T + new})")


@points(1)
@pytest.mark.exercise("generate_cached")
@graded(max_examples=8)
@given(seed=seeds, T=st.integers(1, 10), new=st.integers(1, 8), context_size=st.integers(2, 6))
def test_cached_generation_beyond_the_context(student, seed, T, new, context_size):
    """once the sequence outgrows context_size the window slides, and the tokens are still generate's"""
    reference, model = decoding_pair(student, seed)
    prompt = tokens(DECODE_CFG, 1, T, seed)
    out = student.generate_cached.using("top_k_filter", "top_p_filter")(model, prompt, new, context_size)
    check_greedy(reference, prompt, out, new, context_size,
                 f"generate_cached(model, idx (1x{T}), {new}, context_size={context_size})")


@points(1)
@pytest.mark.exercise("generate_cached")
@graded(max_examples=6)
@given(seed=seeds, T=st.integers(1, 4), at=st.integers(0, 4))
def test_cached_sampling_path_and_eos(student, seed, T, at):
    """sampling with top_k=1 returns the greedy tokens, and eos_id stops generation as in generate"""
    reference, model = decoding_pair(student, seed)
    prompt = tokens(DECODE_CFG, 1, T, seed)
    greedy = ref.generate(reference, prompt, 5, 8)
    eos = int(greedy[0, T + at])
    out = student.generate_cached.using("top_k_filter", "top_p_filter")(
        model, prompt, 6, 8, temperature=0.8, top_k=1, eos_id=eos, generator=student.part("generator", seed))
    check_greedy(reference, prompt, out, 6, 8, f"generate_cached(..., top_k=1, eos_id={eos})", eos_id=eos)
