"""Trust in the week 2 oracle: cross-check ``reference.attention`` against independent code.

Every comparison is against something that does not share code with the reference: torch's own
softmax / scaled_dot_product_attention / nn.MultiheadAttention, or a hand-written einsum
implementation. Random data comes from a torch.Generator seeded by hypothesis, so examples are
reproducible (derandomize=True) and cheap to draw.
"""

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # make `reference` importable however pytest is launched
    sys.path.insert(0, str(ROOT))

from reference.attention import (  # noqa: E402
    MultiHeadAttention,
    attention_weights,
    causal_mask,
    scaled_dot_product_attention,
    softmax,
)

torch.set_num_threads(1)

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=40)
MEDIUM = settings(derandomize=True, database=None, deadline=None, max_examples=25)
SLOW = settings(derandomize=True, database=None, deadline=None, max_examples=12)

seeds = st.integers(min_value=0, max_value=2**31 - 1)
dtypes = st.sampled_from([torch.float32, torch.float64])
NEG_INF = float("-inf")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(g, *shape, dtype=torch.float64, scale=1.0):
    return torch.randn(*shape, generator=g, dtype=dtype) * scale


def random_keep_mask(g, shape):
    """Random bool mask with at least one True in every row of the last dim."""
    mask = torch.rand(*shape, generator=g) < 0.5
    forced = torch.randint(0, shape[-1], shape[:-1], generator=g)
    return mask | F.one_hot(forced, shape[-1]).bool()


@st.composite
def shape_and_dim(draw, max_ndim=4, max_size=6):
    ndim = draw(st.integers(1, max_ndim))
    shape = tuple(draw(st.lists(st.integers(1, max_size), min_size=ndim, max_size=ndim)))
    dim = draw(st.integers(-ndim, ndim - 1))
    return shape, dim


def tols(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)


# --------------------------------------------------------------------------------------- softmax


@FAST
@given(shape_and_dim(), dtypes, seeds)
def test_softmax_matches_torch(sd, dtype, seed):
    shape, dim = sd
    x = randn(gen(seed), *shape, dtype=dtype, scale=5.0)
    x_before = x.clone()
    out = softmax(x, dim=dim)
    assert out.shape == x.shape and out.dtype == dtype
    torch.testing.assert_close(out, torch.softmax(x, dim=dim), **tols(dtype))
    torch.testing.assert_close(out.sum(dim), torch.ones_like(out.sum(dim)), **tols(dtype))
    assert torch.equal(x, x_before), "softmax must not modify its input"


@FAST
@given(shape_and_dim(), dtypes, seeds)
def test_softmax_default_dim_is_last(sd, dtype, seed):
    shape, _ = sd
    x = randn(gen(seed), *shape, dtype=dtype, scale=3.0)
    torch.testing.assert_close(softmax(x), torch.softmax(x, dim=-1), **tols(dtype))


@FAST
@given(shape_and_dim(), dtypes, seeds)
def test_softmax_large_shift_is_stable(sd, dtype, seed):
    shape, dim = sd
    x = randn(gen(seed), *shape, dtype=dtype, scale=3.0)
    out = softmax(x + 1000.0, dim=dim)
    assert torch.isfinite(out).all(), "exp(x + 1000) overflows without the max shift"
    # Against torch on the same shifted input: tight.
    torch.testing.assert_close(out, torch.softmax(x + 1000.0, dim=dim), **tols(dtype))
    # Against the unshifted input: softmax is shift-invariant. float32 loses ~1e-4 absolute
    # precision in x + 1000 (ulp of 1000 is 6e-5), so the tolerance is looser there.
    loose = dict(rtol=1e-3, atol=1e-3) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(out, torch.softmax(x, dim=dim), **loose)
    # Large negative shift must not underflow to 0/0 either.
    torch.testing.assert_close(softmax(x - 1000.0, dim=dim), torch.softmax(x, dim=dim), **loose)


@FAST
@given(shape_and_dim(), dtypes, seeds)
def test_softmax_neg_inf_entries_get_exactly_zero(sd, dtype, seed):
    shape, dim = sd
    g = gen(seed)
    x = randn(g, *shape, dtype=dtype, scale=3.0)
    # Random -inf entries, but keep at least one finite entry per slice along dim.
    keep = random_keep_mask(g, tuple(x.movedim(dim, -1).shape)).movedim(-1, dim)
    x = x.masked_fill(~keep, NEG_INF)
    out = softmax(x, dim=dim)
    assert torch.isfinite(out).all()
    assert (out[~keep] == 0).all(), "-inf logits must get probability exactly 0"
    torch.testing.assert_close(out, torch.softmax(x, dim=dim), **tols(dtype))
    torch.testing.assert_close(out.sum(dim), torch.ones_like(out.sum(dim)), **tols(dtype))


@FAST
@given(shape_and_dim(max_ndim=3), seeds)
def test_softmax_gradient_matches_torch(sd, seed):
    shape, dim = sd
    g = gen(seed)
    x = randn(g, *shape, scale=3.0)
    keep = random_keep_mask(g, tuple(x.movedim(dim, -1).shape)).movedim(-1, dim)
    x = x.masked_fill(~keep, NEG_INF)
    cot = randn(g, *shape)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    (softmax(x1, dim=dim) * cot).sum().backward()
    (torch.softmax(x2, dim=dim) * cot).sum().backward()
    assert torch.isfinite(x1.grad).all()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_all_neg_inf_slice_is_zero_with_finite_grad(dtype):
    x = torch.tensor([[NEG_INF, NEG_INF, NEG_INF], [0.5, NEG_INF, -1.0], [1.0, 2.0, 3.0]], dtype=dtype)
    x.requires_grad_()
    out = softmax(x, dim=-1)
    assert torch.equal(out[0], torch.zeros(3, dtype=dtype))
    torch.testing.assert_close(out[1:], torch.softmax(x.detach()[1:], dim=-1), **tols(dtype))
    (out * torch.arange(9, dtype=dtype).view(3, 3)).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.equal(x.grad[0], torch.zeros(3, dtype=dtype))
    # Along dim 0 the first column is finite in two rows; the middle column has one finite entry.
    out0 = softmax(x.detach(), dim=0)
    torch.testing.assert_close(out0, torch.softmax(x.detach(), dim=0).nan_to_num(0.0), **tols(dtype))


# ----------------------------------------------------------------------------------- causal_mask


@pytest.mark.parametrize("T", [1, 2, 3, 7, 16, 33])
def test_causal_mask_is_lower_triangle(T):
    m = causal_mask(T)
    assert m.dtype == torch.bool and m.shape == (T, T)
    assert torch.equal(m, torch.tril(torch.ones(T, T, dtype=torch.bool)))
    i, j = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
    assert torch.equal(m, j <= i)


@MEDIUM
@given(st.integers(1, 12), st.integers(1, 6), seeds)
def test_causal_mask_equals_torch_is_causal(T, d, seed):
    g = gen(seed)
    q, k, v = randn(g, 2, T, d), randn(g, 2, T, d), randn(g, 2, T, d)
    ours_mask_torch_sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T))
    torch_causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours_mask_torch_sdpa, torch_causal, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        scaled_dot_product_attention(q, k, v, causal_mask(T)), torch_causal, rtol=1e-10, atol=1e-10
    )


# ---------------------------------------------------------------------------------- attention


@st.composite
def attention_case(draw):
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    Tq, Tk = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    d_k, d_v = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    # Mask shapes: none, shared (Tq, Tk), or full batch, or broadcast over the first batch dim.
    mask_kind = draw(st.sampled_from(["none", "2d", "full", "bcast"]))
    return batch, Tq, Tk, d_k, d_v, mask_kind, draw(seeds)


def make_attention_inputs(case):
    batch, Tq, Tk, d_k, d_v, mask_kind, seed = case
    g = gen(seed)
    q, k, v = randn(g, *batch, Tq, d_k), randn(g, *batch, Tk, d_k), randn(g, *batch, Tk, d_v)
    if mask_kind == "none":
        mask = None
    elif mask_kind == "2d" or not batch:
        mask = random_keep_mask(g, (Tq, Tk))
    elif mask_kind == "full":
        mask = random_keep_mask(g, (*batch, Tq, Tk))
    else:
        mask = random_keep_mask(g, (1, *batch[1:], Tq, Tk))
    return g, q, k, v, mask


@MEDIUM
@given(attention_case())
def test_sdpa_matches_torch(case):
    g, q, k, v, mask = make_attention_inputs(case)
    out = scaled_dot_product_attention(q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    # attention_weights is the same rule: weights @ v reproduces the output, rows sum to 1,
    # masked-out keys get exactly zero weight.
    w = attention_weights(q, k, mask)
    torch.testing.assert_close(w @ v, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)), rtol=1e-12, atol=1e-12)
    if mask is not None:
        assert (w[~mask.expand_as(w)] == 0).all()


@MEDIUM
@given(attention_case())
def test_sdpa_gradients_match_torch(case):
    g, q, k, v, mask = make_attention_inputs(case)
    cot = randn(g, *q.shape[:-1], v.shape[-1])
    ours = [t.clone().requires_grad_() for t in (q, k, v)]
    theirs = [t.clone().requires_grad_() for t in (q, k, v)]
    (scaled_dot_product_attention(*ours, mask) * cot).sum().backward()
    (F.scaled_dot_product_attention(*theirs, attn_mask=mask) * cot).sum().backward()
    for name, a, b in zip("qkv", ours, theirs):
        assert torch.isfinite(a.grad).all(), name
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-10, msg=f"grad wrt {name}")


@MEDIUM
@given(st.integers(0, 2), st.integers(1, 7), st.integers(1, 6), seeds)
def test_sdpa_is_causal_and_scaling(H, T, d, seed):
    g = gen(seed)
    lead = (2,) + (H,) * (H > 0)
    q, k, v = randn(g, *lead, T, d, scale=3.0), randn(g, *lead, T, d), randn(g, *lead, T, d)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, causal_mask(T)), expected, rtol=1e-10, atol=1e-10)
    # Independent einsum formula, spelling out the 1/sqrt(d_k).
    scores = torch.einsum("...qd,...kd->...qk", q, k) / math.sqrt(d)
    scores = scores.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), NEG_INF)
    manual = torch.einsum("...qk,...kd->...qd", torch.softmax(scores, -1), v)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, causal_mask(T)), manual, rtol=1e-10, atol=1e-10)


@MEDIUM
@given(seeds, st.integers(1, 3), st.integers(1, 5))
def test_sdpa_leading_dims_broadcast_like_matmul(seed, H, d):
    g = gen(seed)
    Tq, Tk = 3, 4
    q = randn(g, 2, 1, Tq, d)  # batch 2, broadcast over heads
    k = randn(g, 1, H, Tk, d)  # broadcast over batch
    v = randn(g, 1, H, Tk, d + 1)
    mask = random_keep_mask(g, (Tq, Tk))
    out = scaled_dot_product_attention(q, k, v, mask)
    assert out.shape == (2, H, Tq, d + 1)
    qe, ke, ve = q.expand(2, H, Tq, d), k.expand(2, H, Tk, d), v.expand(2, H, Tk, d + 1)
    expected = F.scaled_dot_product_attention(qe.contiguous(), ke.contiguous(), ve.contiguous(), attn_mask=mask)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


@MEDIUM
@given(st.integers(2, 6), st.integers(1, 6), st.integers(1, 4), seeds)
def test_sdpa_fully_masked_rows_zero_output_finite_grads(Tq, Tk, d, seed):
    g = gen(seed)
    H = 2
    q, k, v = randn(g, H, Tq, d), randn(g, H, Tk, d), randn(g, H, Tk, d + 1)
    mask = random_keep_mask(g, (Tq, Tk))
    dead = torch.rand(Tq, generator=g) < 0.5
    dead[torch.randint(0, Tq, (1,), generator=g)] = True  # at least one fully masked row
    dead[0] = False if dead.all() else dead[0]  # and at least one live row
    mask[dead] = False
    live = ~dead

    cot = randn(g, H, Tq, d + 1)
    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
    out = scaled_dot_product_attention(qg, kg, vg, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[:, dead], torch.zeros_like(out[:, dead]))
    assert torch.equal(attention_weights(q, k, mask)[:, dead], torch.zeros(H, int(dead.sum()), Tk, dtype=q.dtype))
    (out * cot).sum().backward()
    for t in (qg, kg, vg):
        assert torch.isfinite(t.grad).all()
    # A dead row's output is the constant 0, so its query gets zero gradient...
    assert torch.equal(qg.grad[:, dead], torch.zeros_like(qg.grad[:, dead]))
    # ...and everything else is what torch gives on the live rows alone.
    ql, kl, vl = q[:, live].clone().requires_grad_(), k.clone().requires_grad_(), v.clone().requires_grad_()
    expected = F.scaled_dot_product_attention(ql, kl, vl, attn_mask=mask[live])
    torch.testing.assert_close(out[:, live], expected, rtol=1e-10, atol=1e-10)
    (expected * cot[:, live]).sum().backward()
    torch.testing.assert_close(qg.grad[:, live], ql.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(kg.grad, kl.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(vg.grad, vl.grad, rtol=1e-10, atol=1e-10)


def test_sdpa_all_masked_everything():
    q, k, v = (torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    out = scaled_dot_product_attention(q, k, v, torch.zeros(3, 3, dtype=torch.bool))
    assert torch.equal(out, torch.zeros(2, 3, 4, dtype=torch.float64))
    out.sum().backward()
    for t in (q, k, v):
        assert torch.equal(t.grad, torch.zeros_like(t))


def test_sdpa_float32_and_no_nan_with_large_scores():
    g = gen(0)
    q, k, v = randn(g, 2, 5, 8, dtype=torch.float32, scale=100.0), randn(g, 2, 5, 8, dtype=torch.float32, scale=100.0), randn(g, 2, 5, 3, dtype=torch.float32)
    out = scaled_dot_product_attention(q, k, v, causal_mask(5))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    expected = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=True)
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------- MultiHeadAttention


def copy_into_torch_mha(ours: MultiHeadAttention, theirs: nn.MultiheadAttention):
    """torch packs q, k, v projections row-wise: in_proj_weight = [W_q; W_k; W_v] (3d, d)."""
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.W_query.weight, ours.W_key.weight, ours.W_value.weight], 0))
        theirs.out_proj.weight.copy_(ours.out_proj.weight)
        if theirs.in_proj_bias is not None:
            if ours.W_query.bias is not None:
                theirs.in_proj_bias.copy_(torch.cat([ours.W_query.bias, ours.W_key.bias, ours.W_value.bias]))
            else:
                theirs.in_proj_bias.zero_()  # reference has no qkv bias: torch's must be 0
            theirs.out_proj.bias.copy_(ours.out_proj.bias)
        else:
            ours.out_proj.bias.zero_()  # torch bias=False has no out_proj bias: make ours 0


@SLOW
@given(
    st.sampled_from([(4, 1), (4, 2), (6, 3), (8, 4), (12, 2), (5, 5)]),
    st.integers(1, 3),
    st.integers(1, 7),
    st.sampled_from(["qkv_bias", "out_bias_only", "no_bias"]),
    seeds,
)
def test_mha_matches_torch_multiheadattention(d_h, B, T, bias_case, seed):
    d, h = d_h
    torch.manual_seed(seed)
    ours = MultiHeadAttention(d, d, context_length=8, dropout=0.0, num_heads=h, qkv_bias=bias_case == "qkv_bias").double().eval()
    theirs = nn.MultiheadAttention(embed_dim=d, num_heads=h, bias=bias_case != "no_bias", batch_first=True).double().eval()
    copy_into_torch_mha(ours, theirs)
    x = torch.randn(B, T, d, dtype=torch.float64)
    with torch.no_grad():
        out = ours(x)
        # torch's attn_mask convention is the opposite: True = NOT allowed to attend.
        expected, w = theirs(x, x, x, attn_mask=~causal_mask(T), need_weights=False)
    assert w is None
    assert out.shape == (B, T, d)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


@SLOW
@given(st.integers(1, 6), st.sampled_from([(1, 4), (2, 4), (3, 6), (4, 8)]), st.integers(1, 6), st.booleans(), seeds)
def test_mha_matches_einsum_implementation_when_d_in_differs(d_in, hd, T, qkv_bias, seed):
    """torch's module needs d_in == d_out; cover d_in != d_out with a hand-written version."""
    h, d_out = hd
    torch.manual_seed(seed)
    m = MultiHeadAttention(d_in, d_out, context_length=6, dropout=0.0, num_heads=h, qkv_bias=qkv_bias).double().eval()
    x = torch.randn(2, T, d_in, dtype=torch.float64, requires_grad=True)
    out = m(x)

    def heads(lin):  # (B, T, d_out) -> (B, H, T, hd), head h owns features h*hd:(h+1)*hd
        y = F.linear(x, lin.weight, lin.bias)
        return torch.stack(y.split(d_out // h, dim=-1), dim=1)

    ctx = F.scaled_dot_product_attention(heads(m.W_query), heads(m.W_key), heads(m.W_value), is_causal=True)
    expected = F.linear(torch.cat(ctx.unbind(1), dim=-1), m.out_proj.weight, m.out_proj.bias)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    gx_ours = torch.autograd.grad(out.square().sum(), x)[0]
    gx_theirs = torch.autograd.grad(expected.square().sum(), x)[0]
    torch.testing.assert_close(gx_ours, gx_theirs, rtol=1e-10, atol=1e-10)


def test_mha_is_causal_future_tokens_do_not_leak():
    torch.manual_seed(0)
    m = MultiHeadAttention(6, 6, context_length=8, dropout=0.0, num_heads=2).double().eval()
    x = torch.randn(1, 8, 6, dtype=torch.float64)
    y = x.clone()
    y[:, 5:] += 10.0  # change only the future of position 4
    with torch.no_grad():
        a, b = m(x), m(y)
    torch.testing.assert_close(a[:, :5], b[:, :5], rtol=0, atol=1e-12)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_mha_attributes_and_state_dict(qkv_bias):
    m = MultiHeadAttention(5, 6, context_length=4, dropout=0.1, num_heads=3, qkv_bias=qkv_bias)
    assert (m.d_out, m.num_heads, m.head_dim) == (6, 3, 2)
    for name in ("W_query", "W_key", "W_value"):
        lin = getattr(m, name)
        assert isinstance(lin, nn.Linear) and (lin.in_features, lin.out_features) == (5, 6)
        assert (lin.bias is not None) == qkv_bias
    assert isinstance(m.out_proj, nn.Linear) and (m.out_proj.in_features, m.out_proj.out_features) == (6, 6)
    assert m.out_proj.bias is not None
    assert isinstance(m.dropout, nn.Dropout) and m.dropout.p == 0.1
    expected = {f"{n}.weight" for n in ("W_query", "W_key", "W_value", "out_proj")} | {"out_proj.bias"}
    if qkv_bias:
        expected |= {"W_query.bias", "W_key.bias", "W_value.bias"}
    keys = set(m.state_dict().keys())
    assert keys == expected and len(m.state_dict()) == (8 if qkv_bias else 5)
    # The mask buffer exists (it moves with .to()) but is not persistent.
    assert any(b.dtype == torch.bool for b in m.buffers())
    # A fresh module loads the state_dict strictly.
    m2 = MultiHeadAttention(5, 6, context_length=4, dropout=0.1, num_heads=3, qkv_bias=qkv_bias)
    m2.load_state_dict(m.state_dict(), strict=True)


@pytest.mark.parametrize("d_out,num_heads", [(6, 4), (5, 2), (7, 3), (4, 8)])
def test_mha_d_out_not_divisible_raises(d_out, num_heads):
    with pytest.raises(ValueError, match=r"d_out \(\d+\) must be divisible by num_heads \(\d+\)"):
        MultiHeadAttention(4, d_out, context_length=4, dropout=0.0, num_heads=num_heads)


def test_mha_sequence_longer_than_context_raises():
    m = MultiHeadAttention(4, 4, context_length=5, dropout=0.0, num_heads=2)
    assert m(torch.randn(2, 5, 4)).shape == (2, 5, 4)  # T == context_length is fine
    with pytest.raises(ValueError):
        m(torch.randn(2, 6, 4))


def test_mha_eval_mode_with_dropout_is_deterministic():
    torch.manual_seed(0)
    m = MultiHeadAttention(8, 8, context_length=6, dropout=0.5, num_heads=2).double()
    m0 = MultiHeadAttention(8, 8, context_length=6, dropout=0.0, num_heads=2).double()
    m0.load_state_dict(m.state_dict())
    x = torch.randn(3, 6, 8, dtype=torch.float64)
    m.eval()
    with torch.no_grad():
        a, b, ref = m(x), m(x), m0.eval()(x)
    assert torch.equal(a, b)
    torch.testing.assert_close(a, ref, rtol=0, atol=0)
    m.train()  # and in train mode dropout really is active
    with torch.no_grad():
        assert not torch.allclose(m(x), a)


def test_mha_dropout_is_applied_to_attention_weights():
    """Same RNG stream: dropout on the (B, H, T, T) weights, nowhere else, inverted scaling."""
    torch.manual_seed(1)
    B, T, d, h, p = 2, 5, 6, 3, 0.3
    m = MultiHeadAttention(d, d, context_length=T, dropout=p, num_heads=h, qkv_bias=True).double().train()
    x = torch.randn(B, T, d, dtype=torch.float64)
    torch.manual_seed(123)
    with torch.no_grad():
        out = m(x)

    def heads(y):
        return torch.stack(y.split(d // h, dim=-1), dim=1)

    with torch.no_grad():
        q, k, v = heads(F.linear(x, m.W_query.weight, m.W_query.bias)), heads(F.linear(x, m.W_key.weight, m.W_key.bias)), heads(F.linear(x, m.W_value.weight, m.W_value.bias))
        scores = (q @ k.transpose(-2, -1) / math.sqrt(d // h)).masked_fill(torch.ones(T, T).triu(1).bool(), NEG_INF)
        torch.manual_seed(123)
        w = F.dropout(torch.softmax(scores, -1), p=p, training=True)
        expected = F.linear(torch.cat((w @ v).unbind(1), -1), m.out_proj.weight, m.out_proj.bias)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_mha_follows_module_device_and_dtype():
    m = MultiHeadAttention(4, 4, context_length=3, dropout=0.0, num_heads=2).to(torch.float64)
    out = m(torch.randn(1, 3, 4, dtype=torch.float64))
    assert out.dtype == torch.float64
