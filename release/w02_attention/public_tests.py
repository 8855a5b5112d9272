"""Public tests for week 2 (attention): small, instant checks shipped with the notebook.

They use properties and tiny examples whose answers were worked out by hand; there is no reference
implementation here. The hidden tests check the same contract much more thoroughly.
"""

import math

import torch
import torch.nn as nn

from autograder.student.public import public_test

INF = float("inf")


def _fmt(t):
    return [[round(float(v), 4) for v in row] for row in t.reshape(-1, t.shape[-1])]


def _expect_tensor(value, what):
    assert isinstance(value, torch.Tensor), f"{what} should return a torch.Tensor, got {type(value).__name__}"
    return value


# ------------------------------------------------------------------------------------------------
# Exercise 1: softmax
# ------------------------------------------------------------------------------------------------


@public_test("softmax")
def rows_sum_to_one(ns):
    """softmax keeps the shape, is non-negative and sums to 1 along `dim`"""
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-1.0, 5.0, 2.0]])
    p = _expect_tensor(ns.softmax(x), "softmax(x)")
    assert p.shape == x.shape, f"softmax(x) should keep the shape {tuple(x.shape)}, got {tuple(p.shape)}"
    assert (p >= 0).all(), "softmax(x) should never be negative"
    assert torch.allclose(p.sum(-1), torch.ones(3), atol=1e-6), (
        f"each row of softmax(x) should sum to 1; row sums are {p.sum(-1).tolist()}"
    )
    p0 = _expect_tensor(ns.softmax(x, dim=0), "softmax(x, dim=0)")
    assert torch.allclose(p0.sum(0), torch.ones(3), atol=1e-6), (
        "softmax(x, dim=0) should make each *column* sum to 1: normalise along `dim`, not always the last "
        f"dimension (column sums are {p0.sum(0).tolist()})"
    )


@public_test("softmax")
def small_example_by_hand(ns):
    """softmax([0, ln 2]) = [1/3, 2/3] and softmax of equal entries is uniform"""
    p = ns.softmax(torch.tensor([0.0, math.log(2.0)]))
    expected = torch.tensor([1 / 3, 2 / 3])
    assert torch.allclose(p, expected, atol=1e-6), (
        f"softmax([0, ln 2]) should be [1/3, 2/3] since e^0 = 1 and e^(ln 2) = 2; got {p.tolist()}"
    )
    p = ns.softmax(torch.zeros(2, 4))
    assert torch.allclose(p, torch.full((2, 4), 0.25), atol=1e-6), (
        f"softmax of four equal entries should give 0.25 each; got {_fmt(p)}"
    )


@public_test("softmax")
def stable_for_large_inputs(ns):
    """softmax(x + 1000) equals softmax(x): no overflow to inf or nan"""
    # softmax([0, 1, 2]) = [1, e, e^2] / (1 + e + e^2), computed by hand
    expected = torch.tensor([0.09003057, 0.24472847, 0.66524096])
    for shift in (1000.0, -1000.0):
        x = torch.tensor([0.0, 1.0, 2.0]) + shift
        p = ns.softmax(x)
        assert torch.isfinite(p).all(), (
            f"softmax({x.tolist()}) contains inf or nan: exp overflowed or underflowed. "
            "Subtract the maximum along `dim` before calling exp."
        )
        assert torch.allclose(p, expected, atol=1e-6), (
            f"softmax({x.tolist()}) should equal softmax([0, 1, 2]) = {expected.tolist()}; got {p.tolist()}"
        )


@public_test("softmax")
def minus_inf_gets_zero(ns):
    """entries equal to -inf get probability exactly 0"""
    p = ns.softmax(torch.tensor([[0.0, -INF, math.log(3.0)], [-INF, 5.0, -INF]]))
    assert torch.isfinite(p).all(), f"softmax with some -inf entries should stay finite; got {_fmt(p)}"
    assert p[0, 1] == 0 and p[1, 0] == 0 and p[1, 2] == 0, (
        f"entries equal to -inf must get probability exactly 0; got {_fmt(p)}"
    )
    assert torch.allclose(p[0], torch.tensor([0.25, 0.0, 0.75]), atol=1e-6), (
        f"softmax([0, -inf, ln 3]) should be [1/4, 0, 3/4]; got {p[0].tolist()}"
    )
    assert torch.allclose(p[1], torch.tensor([0.0, 1.0, 0.0])), (
        f"softmax([-inf, 5, -inf]) should be [0, 1, 0]; got {p[1].tolist()}"
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: causal_mask
# ------------------------------------------------------------------------------------------------


@public_test("causal_mask")
def shape_and_dtype(ns):
    """causal_mask(T) is a (T, T) tensor of dtype torch.bool"""
    m = _expect_tensor(ns.causal_mask(4), "causal_mask(4)")
    assert m.shape == (4, 4), f"causal_mask(4) should have shape (4, 4), got {tuple(m.shape)}"
    assert m.dtype == torch.bool, f"causal_mask should have dtype torch.bool, got {m.dtype}"


@public_test("causal_mask")
def three_by_three(ns):
    """causal_mask(3) is the lower triangle, diagonal included"""
    expected = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    m = ns.causal_mask(3)
    assert m.shape == (3, 3) and torch.equal(m.bool(), expected), (
        f"causal_mask(3) should be {expected.int().tolist()} (1 = may attend: key j <= query i), "
        f"got {m.int().tolist()}"
    )


@public_test("causal_mask")
def edge_sizes(ns):
    """causal_mask(1) is [[True]]; causal_mask(6) allows exactly the pairs j <= i"""
    m = ns.causal_mask(1)
    assert m.shape == (1, 1) and bool(m[0, 0]), f"causal_mask(1) should be [[True]], got {m.tolist()}"
    m = ns.causal_mask(6)
    assert m.shape == (6, 6), f"causal_mask(6) should have shape (6, 6), got {tuple(m.shape)}"
    assert m.bool().diagonal().all(), "every position may attend to itself: the diagonal must be True"
    assert not m.bool()[0, 5] and bool(m[5, 0]), (
        "row = query, column = key: mask[5, 0] (query 5 sees key 0) must be True and mask[0, 5] False"
    )
    assert int(m.sum()) == 21, f"a 6x6 causal mask has 6 * 7 / 2 = 21 True entries, got {int(m.sum())}"


# ------------------------------------------------------------------------------------------------
# Exercise 3: scaled_dot_product_attention
# ------------------------------------------------------------------------------------------------


@public_test("scaled_dot_product_attention")
def output_shape(ns):
    """output has shape (..., Tq, d_v), with Tq != Tk and d_k != d_v"""
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 5)
    out = ns.scaled_dot_product_attention(q, k, v)
    assert not isinstance(out, tuple), "return only the output tensor, not (output, weights)"
    _expect_tensor(out, "scaled_dot_product_attention")
    assert out.shape == (2, 3, 4, 5), (
        f"q (2, 3, 4, 8), k (2, 3, 6, 8), v (2, 3, 6, 5) should give (2, 3, 4, 5), got {tuple(out.shape)}"
    )
    out = ns.scaled_dot_product_attention(torch.randn(3, 2), torch.randn(7, 2), torch.randn(7, 4))
    assert out.shape == (3, 4), (
        f"without batch dimensions the output should be (Tq, d_v) = (3, 4), got {tuple(out.shape)}"
    )


@public_test("scaled_dot_product_attention")
def identical_keys_average_values(ns):
    """when all keys are equal, every query gets the plain mean of the values"""
    q = torch.tensor([[1.0, 2.0], [-3.0, 0.5]])
    k = torch.tensor([[0.7, -0.2]] * 3)
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    out = ns.scaled_dot_product_attention(q, k, v)
    expected = torch.tensor([[3.0, 5.0], [3.0, 5.0]])
    assert torch.allclose(out, expected, atol=1e-5), (
        f"with identical keys all weights are equal, so each output row is the mean of v, [3, 5]; got {_fmt(out)}"
    )


@public_test("scaled_dot_product_attention")
def scores_scaled_by_sqrt_dk(ns):
    """scores are divided by sqrt(d_k): a hand-computed example with d_k = 4"""
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    k = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2 * math.log(2.0), 0.0, 0.0, 0.0]])
    v = torch.tensor([[3.0], [6.0]])
    # scores [0, 2 ln 2] / sqrt(4) = [0, ln 2] -> weights [1/3, 2/3] -> 1/3 * 3 + 2/3 * 6 = 5
    out = ns.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(out, torch.tensor([[5.0]]), atol=1e-5), (
        f"expected [[5.0]], got {_fmt(out)}. (5.4 means the scores were not divided by sqrt(d_k) = 2; "
        "d_k is the last dimension of q.)"
    )


@public_test("scaled_dot_product_attention")
def masked_keys_get_no_weight(ns):
    """masked-out keys are ignored, and the mask broadcasts over batch dimensions"""
    q = torch.zeros(2, 3, 2)  # zero queries: all allowed keys get equal weight
    k = torch.randn(2, 3, 2)
    v = torch.tensor([[1.0], [4.0], [100.0]]).expand(2, 3, 1)
    mask = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    out = ns.scaled_dot_product_attention(q, k, v, mask=mask)
    expected = torch.tensor([[1.0], [2.5], [35.0]]).expand(2, 3, 1)
    assert out.shape == (2, 3, 1), f"expected output shape (2, 3, 1), got {tuple(out.shape)}"
    assert torch.allclose(out, expected, atol=1e-4), (
        f"with a causal mask and equal scores, row i should average the first i + 1 values: "
        f"expected {_fmt(expected[0])} in each batch, got {_fmt(out)}. (True in the mask = may attend.)"
    )


@public_test("scaled_dot_product_attention")
def fully_masked_row_gives_zeros(ns):
    """a query whose mask row is all False gets an output row of zeros, not NaN"""
    q, k = torch.randn(2, 3), torch.randn(4, 3)
    v = torch.tensor([[1.0, -2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    mask = torch.tensor([[False, False, False, False], [True, True, True, True]])
    out = ns.scaled_dot_product_attention(q, k, v, mask=mask)
    assert not torch.isnan(out).any(), (
        f"a fully masked row produced NaN: {_fmt(out)}. Such a row attends to nothing and its output "
        "must be all zeros; see 'The empty row' above."
    )
    assert torch.equal(out[0], torch.zeros(2)), f"the fully masked row should be [0, 0], got {out[0].tolist()}"
    full = ns.scaled_dot_product_attention(q, k, v)
    assert torch.allclose(out[1], full[1], atol=1e-6), "a row with every key allowed should match the unmasked result"


# ------------------------------------------------------------------------------------------------
# Exercise 4: MultiHeadAttention
# ------------------------------------------------------------------------------------------------


@public_test("multi_head_attention")
def output_shape_and_layers(ns):
    """(B, T, d_in) -> (B, T, d_out) for T <= context_length; Linear layers named and shaped as specified"""
    mha = ns.MultiHeadAttention(d_in=6, d_out=8, context_length=10, dropout=0.0, num_heads=2)
    assert isinstance(mha, nn.Module), "MultiHeadAttention should be a subclass of nn.Module"
    mha.eval()
    for T in (5, 10):
        out = mha(torch.randn(2, T, 6))
        assert out.shape == (2, T, 8), f"input (2, {T}, 6) should give output (2, {T}, 8), got {tuple(out.shape)}"
    for name in ("W_query", "W_key", "W_value"):
        layer = getattr(mha, name, None)
        assert isinstance(layer, nn.Linear), f"self.{name} should be an nn.Linear"
        assert (layer.in_features, layer.out_features) == (6, 8), f"self.{name} should be nn.Linear(d_in, d_out)"
        assert layer.bias is None, f"self.{name} should have no bias when qkv_bias=False"
    out_proj = getattr(mha, "out_proj", None)
    assert isinstance(out_proj, nn.Linear) and (out_proj.in_features, out_proj.out_features) == (8, 8), (
        "self.out_proj should be nn.Linear(d_out, d_out)"
    )
    assert out_proj.bias is not None, "self.out_proj should have a bias"
    with_bias = ns.MultiHeadAttention(6, 8, 10, 0.0, 2, qkv_bias=True)
    assert all(getattr(with_bias, n).bias is not None for n in ("W_query", "W_key", "W_value")), (
        "with qkv_bias=True, W_query, W_key and W_value should have a bias"
    )


@public_test("multi_head_attention")
def running_mean_by_hand(ns):
    """with zero queries and identity projections, the output at t is the mean of x[0..t]"""
    mha = ns.MultiHeadAttention(d_in=4, d_out=4, context_length=8, dropout=0.0, num_heads=2).eval()
    with torch.no_grad():
        mha.W_query.weight.zero_()  # all scores 0: equal weights over the allowed (past) positions
        mha.W_key.weight.copy_(torch.eye(4))
        mha.W_value.weight.copy_(torch.eye(4))
        mha.out_proj.weight.copy_(torch.eye(4))
        mha.out_proj.bias.zero_()
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [3.0, 0.0, -1.0, 8.0], [5.0, 4.0, 1.0, 0.0]]])
    expected = torch.tensor([[[1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 1.0, 6.0], [3.0, 2.0, 1.0, 4.0]]])
    out = mha(x)
    assert torch.allclose(out, expected, atol=1e-5), (
        f"expected the running mean of the inputs {_fmt(expected)}, got {_fmt(out)}. Check the causal mask "
        "and that the heads are split with view(B, T, num_heads, head_dim).transpose(1, 2) and put back "
        "with transpose(1, 2) before reshaping to (B, T, d_out)."
    )


@public_test("multi_head_attention")
def causal(ns):
    """the output at position t does not change when later tokens change"""
    gen = torch.Generator().manual_seed(0)  # a private generator: the notebook's random state is left alone
    mha = ns.MultiHeadAttention(d_in=6, d_out=8, context_length=10, dropout=0.0, num_heads=2).eval()
    x = torch.randn(2, 6, 6, generator=gen)
    x2 = x.clone()
    x2[:, 3:] = torch.randn(2, 3, 6, generator=gen)
    with torch.no_grad():
        a, b = mha(x), mha(x2)
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6), (
        "changing tokens 3, 4, 5 changed the output at positions 0, 1, 2: the attention can see the future. "
        "Apply the causal mask (True = may attend) before the softmax."
    )
    assert not torch.allclose(a[:, 3:], b[:, 3:]), "changing tokens 3, 4, 5 should change the output there"


@public_test("multi_head_attention")
def rejects_indivisible_heads(ns):
    """d_out = 5 with num_heads = 2 raises ValueError (or AssertionError)"""
    try:
        ns.MultiHeadAttention(d_in=4, d_out=5, context_length=4, dropout=0.0, num_heads=2)
    except (ValueError, AssertionError):
        return
    raise AssertionError(
        "MultiHeadAttention(d_out=5, num_heads=2) should raise a ValueError: 5 output features cannot be "
        "split evenly into 2 heads"
    )
