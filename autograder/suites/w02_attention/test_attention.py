"""Hidden tests, week 2 (attention). 28 points; 232 examples in all (hypothesis and fixed cases).

Inputs are generated here (trusted) from small hypothesis draws (shapes, a seed, a scale), so a failure
report shows the smallest failing draw; the reference runs in float64 on the same float32 inputs.
Tolerances are ``f32_tol(scale)`` (see ``autograder/compare.py``) with the scale written next to each test.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.compare import assert_close, expect_tensor, f32_tol, graded
from autograder.proxy import StudentError
from reference import attention as ref

torch.set_num_threads(1)

points = pytest.mark.points


def randn(shape, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(tuple(shape), generator=g) * scale).to(torch.float32)


def random_mask(shape, seed: int) -> torch.Tensor:
    """A random keep-mask with at least one True per query row."""
    g = torch.Generator().manual_seed(seed + 1)
    mask = torch.rand(tuple(shape), generator=g) < 0.6
    first = torch.randint(0, shape[-1], tuple(shape[:-1]) + (1,), generator=g)
    return mask.scatter(-1, first, True)


lead_dims = st.lists(st.integers(1, 3), min_size=0, max_size=2)  # batch and head dims: (), (B,), (B, H)
seeds = st.integers(0, 2**31 - 1)


def attention_scale(q, k, v) -> float:
    """Magnitude that bounds float32 rounding in attention: the size of the scores, times |v|."""
    d_k = q.shape[-1]
    score = q.abs().max() * k.abs().max() * math.sqrt(d_k) if q.numel() and k.numel() else 1.0
    return float((1 + score) * max(float(v.abs().max()) if v.numel() else 1.0, 1.0))


# ---------------------------------------------------------------------------------------------- softmax
@points(2)
@pytest.mark.exercise("softmax")
@graded(max_examples=30)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), seed=seeds, scale=st.sampled_from([0.1, 1.0, 5.0]),
       data=st.data())
def test_softmax_matches_reference(student, shape, seed, scale, data):
    """softmax equals the reference along any dim (tolerance f32_tol(scale))"""
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    x = randn(shape, seed, scale)
    out = student.softmax(x, dim=dim)
    expect_tensor(out, "softmax(x, dim)", shape=x.shape, floating=True)
    assert_close(out, ref.softmax(x.double(), dim=dim), atol=f32_tol(scale), what=f"softmax(x, dim={dim})")


@points(2)
@pytest.mark.exercise("softmax")
@graded(max_examples=20)
@given(rows=st.integers(1, 4), cols=st.integers(1, 8), seed=seeds, shift=st.sampled_from([1000.0, -1000.0, 1e4, 88.8]))
def test_softmax_is_stable(student, rows, cols, seed, shift):
    """softmax(x + c) is finite and equals softmax(x) for large c (tolerance f32_tol(|c|))"""
    x = randn((rows, cols), seed, 3.0)
    out = student.softmax(x + shift, dim=-1)
    assert_close(out, ref.softmax(x.double(), dim=-1), atol=f32_tol(abs(shift)), what=f"softmax(x + {shift:g})")


@points(1)
@pytest.mark.exercise("softmax")
@graded(max_examples=15)
@given(rows=st.integers(1, 4), cols=st.integers(2, 8), seed=seeds)
def test_softmax_neg_inf_entries(student, rows, cols, seed):
    """-inf entries get probability exactly 0 and the rest renormalise (tolerance f32_tol(1))"""
    x = randn((rows, cols), seed)
    x = x.masked_fill(~random_mask((rows, cols), seed), -math.inf)
    out = expect_tensor(student.softmax(x, dim=-1), "softmax(x)", shape=x.shape, floating=True)
    if (out[torch.isinf(x)] != 0).any():
        raise AssertionError("softmax gives a non-zero probability to a -inf entry")
    assert_close(out, ref.softmax(x.double(), dim=-1), atol=f32_tol(1.0), what="softmax(x with -inf entries)")


# ------------------------------------------------------------------------------------------ causal_mask
@points(2)
@pytest.mark.exercise("causal_mask")
@graded(max_examples=15)
@given(T=st.integers(1, 40))
def test_causal_mask_values(student, T):
    """causal_mask(T) is True exactly where key j <= query i (exact)"""
    out = expect_tensor(student.causal_mask(T), f"causal_mask({T})", shape=(T, T))
    expected = ref.causal_mask(T)
    wrong = out.to(torch.bool) != expected
    if wrong.any():
        i, j = (int(v) for v in wrong.nonzero()[0])
        raise AssertionError(f"causal_mask({T}) is wrong at {int(wrong.sum())} positions, first at [query {i}, key {j}]"
                             f" (True must mean 'query i may attend to key j', i.e. j <= i)")


@points(1)
@pytest.mark.exercise("causal_mask")
def test_causal_mask_dtype(student):
    """causal_mask returns a torch.bool tensor (exact)"""
    expect_tensor(student.causal_mask(5), "causal_mask(5)", shape=(5, 5), dtype=torch.bool)


# ---------------------------------------------------------------------------- scaled_dot_product_attention
shapes = st.fixed_dictionaries({"lead": lead_dims, "Tq": st.integers(1, 7), "Tk": st.integers(1, 7),
                                "d_k": st.integers(1, 16), "d_v": st.integers(1, 9)})


def qkv(s, seed, scale=1.0):
    lead = tuple(s["lead"])
    return (randn(lead + (s["Tq"], s["d_k"]), seed, scale), randn(lead + (s["Tk"], s["d_k"]), seed + 7, scale),
            randn(lead + (s["Tk"], s["d_v"]), seed + 13))


@points(3)
@pytest.mark.exercise("scaled_dot_product_attention")
@graded(max_examples=30)
@given(s=shapes, seed=seeds)
def test_sdpa_no_mask(student, s, seed):
    """attention without a mask equals the reference; any batch/head dims, Tq != Tk, d_k != d_v
    (tolerance f32_tol(attention scale))"""
    q, k, v = qkv(s, seed)
    out = student.scaled_dot_product_attention(q, k, v)
    expect_tensor(out, "scaled_dot_product_attention(q, k, v)", shape=q.shape[:-1] + (s["d_v"],), floating=True)
    assert_close(out, ref.scaled_dot_product_attention(q.double(), k.double(), v.double()),
                 atol=f32_tol(attention_scale(q, k, v)), what="attention output")


@points(3)
@pytest.mark.exercise("scaled_dot_product_attention")
@graded(max_examples=30)
@given(s=shapes, seed=seeds, broadcast=st.booleans())
def test_sdpa_with_mask(student, s, seed, broadcast):
    """a bool mask (True = keep), full-size or broadcast over batch/head dims, equals the reference
    (tolerance f32_tol(attention scale))"""
    q, k, v = qkv(s, seed)
    mask_shape = (s["Tq"], s["Tk"]) if broadcast else tuple(s["lead"]) + (s["Tq"], s["Tk"])
    mask = random_mask(mask_shape, seed)
    out = student.scaled_dot_product_attention(q, k, v, mask=mask)
    expect_tensor(out, "scaled_dot_product_attention(q, k, v, mask)", shape=q.shape[:-1] + (s["d_v"],), floating=True)
    assert_close(out, ref.scaled_dot_product_attention(q.double(), k.double(), v.double(), mask=mask),
                 atol=f32_tol(attention_scale(q, k, v)), what=f"attention output with a {tuple(mask.shape)} mask")


@points(1)
@pytest.mark.exercise("scaled_dot_product_attention")
@graded(max_examples=10)
@given(s=shapes, seed=seeds)
def test_sdpa_fully_masked_rows(student, s, seed):
    """a query row whose mask is all False outputs zeros (the notebook's convention), other rows unchanged"""
    q, k, v = qkv(s, seed)
    mask = random_mask((s["Tq"], s["Tk"]), seed)
    mask[0] = False  # the first query may attend to nothing
    out = student.scaled_dot_product_attention(q, k, v, mask=mask)
    expect_tensor(out, "scaled_dot_product_attention(q, k, v, mask)", shape=q.shape[:-1] + (s["d_v"],), floating=True)
    if torch.isnan(out[..., 0, :]).any():
        raise AssertionError("a fully masked query row gives NaN; the notebook asks for a row of zeros")
    assert_close(out, ref.scaled_dot_product_attention(q.double(), k.double(), v.double(), mask=mask),
                 atol=f32_tol(attention_scale(q, k, v)), what="attention output with a fully masked row")


@points(1)
@pytest.mark.exercise("scaled_dot_product_attention")
@graded(max_examples=15)
@given(s=shapes, seed=seeds, scale=st.sampled_from([30.0, 100.0]))
def test_sdpa_extreme_values(student, s, seed, scale):
    """large queries and keys (scores in the thousands) stay finite and match (tolerance f32_tol(attention scale))"""
    q, k, v = qkv(s, seed, scale)
    # causal where it fits, and every query may see key 0, so no row is fully masked
    mask = ref.causal_mask(max(s["Tq"], s["Tk"]))[: s["Tq"], : s["Tk"]] | (torch.arange(s["Tk"]) == 0)
    out = student.scaled_dot_product_attention(q, k, v, mask=mask)
    expected = ref.scaled_dot_product_attention(q.double(), k.double(), v.double(), mask=mask)
    assert_close(out, expected, atol=f32_tol(attention_scale(q, k, v)), what=f"attention output with inputs of scale {scale:g}")


@points(2)
@pytest.mark.exercise("scaled_dot_product_attention")
@graded(max_examples=20)
@given(s=shapes, seed=seeds, masked=st.booleans())
def test_sdpa_gradients(student, s, seed, masked):
    """gradients flow to q, k and v and equal the reference's (tolerance f32_tol(attention scale) * d)"""
    q, k, v = qkv(s, seed)
    mask = random_mask((s["Tq"], s["Tk"]), seed) if masked else None
    cot = randn(q.shape[:-1] + (s["d_v"],), seed + 99)
    got = student.scaled_dot_product_attention.vjp(q, k, v, mask=mask, cotangent=cot)
    qd, kd, vd = (t.double().requires_grad_(True) for t in (q, k, v))
    (ref.scaled_dot_product_attention(qd, kd, vd, mask=mask) * cot.double()).sum().backward()
    tol = f32_tol(attention_scale(q, k, v) * max(s["d_k"], s["Tk"], s["Tq"]))
    for name, grad, want in zip("qkv", got["arg_grads"], (qd.grad, kd.grad, vd.grad)):
        if grad is None:
            raise AssertionError(f"no gradient reached {name}: is the output detached from the inputs?")
        assert_close(grad, want, atol=tol, what=f"gradient with respect to {name}")


# ------------------------------------------------------------------------------------ MultiHeadAttention
mha_cfg = st.fixed_dictionaries({"B": st.integers(1, 3), "T": st.integers(1, 8), "d_in": st.integers(1, 12),
                                 "num_heads": st.integers(1, 4), "head_dim": st.integers(1, 5),
                                 "qkv_bias": st.booleans(), "dropout": st.sampled_from([0.0, 0.1, 0.5])})


def build_pair(student, c, seed):
    """The reference module and the student's, holding the same weights, both in eval mode."""
    d_out = c["num_heads"] * c["head_dim"]
    context = c["T"] + 2
    torch.manual_seed(seed)
    reference = ref.MultiHeadAttention(c["d_in"], d_out, context, c["dropout"], c["num_heads"], c["qkv_bias"]).double()
    reference.eval()
    theirs = student.MultiHeadAttention(c["d_in"], d_out, context, c["dropout"], c["num_heads"], c["qkv_bias"])
    theirs.load_parameters({n: p.detach().float() for n, p in reference.named_parameters()})
    theirs.method("eval")()
    return reference, theirs, d_out


@points(4)
@pytest.mark.exercise("multi_head_attention")
@graded(max_examples=25)
@given(c=mha_cfg, seed=seeds)
def test_mha_matches_reference(student, c, seed):
    """with the same weights, forward(x) equals the reference in eval mode (tolerance f32_tol(10 * d_in * d_out))"""
    reference, theirs, d_out = build_pair(student, c, seed % 1000)
    x = randn((c["B"], c["T"], c["d_in"]), seed)
    out = theirs(x)
    expect_tensor(out, "MultiHeadAttention(x)", shape=(c["B"], c["T"], d_out), floating=True)
    with torch.no_grad():
        expected = reference(x.double())
    assert_close(out, expected, atol=f32_tol(10 * c["d_in"] * d_out), what="MultiHeadAttention output")


@points(2)
@pytest.mark.exercise("multi_head_attention")
@graded(max_examples=10)
@given(c=mha_cfg, seed=seeds)
def test_mha_gradients(student, c, seed):
    """gradients of every weight equal the reference's (tolerance f32_tol(100 * d_in * d_out))"""
    reference, theirs, d_out = build_pair(student, c, seed % 1000)
    x = randn((c["B"], c["T"], c["d_in"]), seed)
    cot = randn((c["B"], c["T"], d_out), seed + 5)
    got = theirs.vjp(x, cotangent=cot)
    (reference(x.double()) * cot.double()).sum().backward()
    for name, p in reference.named_parameters():
        grad = got["param_grads"].get(name)
        if grad is None:
            raise AssertionError(f"no gradient reached {name}: is it used in forward?")
        assert_close(grad, p.grad, atol=f32_tol(100 * c["d_in"] * d_out), what=f"gradient of {name}")


@points(1)
@pytest.mark.exercise("multi_head_attention")
@pytest.mark.parametrize("d_out,num_heads", [(5, 2), (6, 4), (7, 3)])
def test_mha_rejects_indivisible_heads(student, d_out, num_heads):
    """d_out not divisible by num_heads raises ValueError (an assert is accepted); a divisible one does not"""
    student.MultiHeadAttention(4, d_out - d_out % num_heads, 8, 0.0, num_heads)  # must construct: no error
    try:
        student.MultiHeadAttention(4, d_out, 8, 0.0, num_heads)
    except StudentError as exc:
        if exc.type_name not in ("ValueError", "AssertionError"):
            raise AssertionError(f"d_out={d_out}, num_heads={num_heads} raised {exc.type_name}; expected ValueError") from None
        return
    raise AssertionError(f"MultiHeadAttention(d_in=4, d_out={d_out}, num_heads={num_heads}) was accepted; "
                         "it must raise ValueError because the heads cannot split d_out evenly")


@points(1)
@pytest.mark.exercise("multi_head_attention")
@graded(max_examples=8)
@given(c=mha_cfg, seed=seeds)
def test_mha_is_causal(student, c, seed):
    """changing later tokens never changes earlier outputs, and changing a token changes its own output
    (tolerance f32_tol(10 * d_in * d_out))"""
    reference, theirs, d_out = build_pair(student, c, seed % 1000)
    x = randn((c["B"], c["T"], c["d_in"]), seed)
    y = x.clone()
    y[:, -1] += 1.0
    a, b = theirs(x), theirs(y)
    expect_tensor(a, "MultiHeadAttention(x)", shape=(c["B"], c["T"], d_out), floating=True)
    expect_tensor(b, "MultiHeadAttention(x)", shape=(c["B"], c["T"], d_out), floating=True)
    tol = f32_tol(10 * c["d_in"] * d_out)
    assert_close(b[:, :-1], a[:, :-1], atol=tol, what="outputs before the changed last token")
    with torch.no_grad():  # an output that ignores its input is not causal attention
        moved = (reference(y.double())[:, -1] - reference(x.double())[:, -1]).abs().max()
    if moved > 100 * tol and (b[:, -1] - a[:, -1]).abs().max() <= tol:
        raise AssertionError("changing the last token did not change its own output: does forward use its input?")
