"""Public tests for week 3 (the GPT model and text generation): small, instant checks shipped with the notebook.

They use properties, tiny examples whose answers were worked out by hand, and small stand-in models
whose next token is known in advance; there is no reference implementation here. The hidden tests check
the same contract much more thoroughly (random configurations, shared weights, a comparison with a
reference model, sampling checked by its distribution).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from autograder.student.public import public_test

INF = float("inf")
TINY = {"vocab_size": 11, "context_length": 6, "emb_dim": 8, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0,
        "qkv_bias": False}


def _fmt(t):
    return [[round(float(v), 4) for v in row] for row in t.detach().reshape(-1, t.shape[-1])]


def _expect_tensor(value, what):
    assert isinstance(value, torch.Tensor), f"{what} should return a torch.Tensor, got {type(value).__name__}"
    return value


def _gen(seed):
    """A private generator: the notebook's global random state is left alone."""
    private = torch.Generator()
    private.manual_seed(seed)
    return private


def _randomise(module, seed):
    """Give every parameter random values (so that, e.g., LayerNorm's scale is not just ones)."""
    gen = _gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return module


# ------------------------------------------------------------------------------------------------
# Exercise 1: LayerNorm
# ------------------------------------------------------------------------------------------------


@public_test("layer_norm")
def parameters_named_scale_and_shift(ns):
    """LayerNorm(4) has exactly two parameters: scale (ones) and shift (zeros)"""
    ln = ns.LayerNorm(4)
    assert isinstance(ln, nn.Module), "LayerNorm should be a subclass of nn.Module"
    params = dict(ln.named_parameters())
    assert set(params) == {"scale", "shift"}, (
        f"LayerNorm's parameters should be named exactly `scale` and `shift` (the graders load weights by "
        f"name); found {sorted(params)}"
    )
    assert torch.equal(params["scale"].detach(), torch.ones(4)), "scale should start as ones(emb_dim)"
    assert torch.equal(params["shift"].detach(), torch.zeros(4)), "shift should start as zeros(emb_dim)"


@public_test("layer_norm")
def each_row_gets_mean_0_and_variance_1(ns):
    """with the default parameters every row has mean 0 and (biased) variance 1; the shape is kept"""
    x = torch.randn(2, 3, 16, generator=_gen(0)) * torch.tensor([[[0.5]], [[20.0]]]) + 7.0
    out = _expect_tensor(ns.LayerNorm(16)(x), "LayerNorm(16)(x)")
    assert out.shape == x.shape, f"the output should keep the shape {tuple(x.shape)}, got {tuple(out.shape)}"
    mean = out.mean(dim=-1)
    var = out.var(dim=-1, unbiased=False)
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5), (
        f"each row (the last dimension) should have mean 0 after normalising; row means are {_fmt(mean)}. "
        "Take the mean over dim=-1 with keepdim=True."
    )
    assert torch.allclose(var, torch.ones_like(var), atol=1e-3), (
        f"each row should have variance 1 (dividing by n); row variances are {_fmt(var)}"
    )


@public_test("layer_norm")
def hand_example_biased_variance_and_eps(ns):
    """[1, 2, 3, 4] -> [-1.3416, -0.4472, 0.4472, 1.3416]; eps = 1e-5 sits inside the square root"""
    ln = ns.LayerNorm(4)
    out = ln(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    # mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25, 1 / sqrt(1.25 + 1e-5) = 0.894423
    expected = torch.tensor([[-1.3416354, -0.4472118, 0.4472118, 1.3416354]])
    assert torch.allclose(out, expected, atol=1e-5), (
        f"LayerNorm of [1, 2, 3, 4] should be {_fmt(expected)} (mean 2.5, variance 1.25); got {_fmt(out)}. "
        "[-1.1619, ...] means you used the unbiased variance (dividing by n - 1): use unbiased=False or "
        "average the squared deviations yourself."
    )
    tiny = ns.LayerNorm(2)(torch.tensor([[1e-3, -1e-3]]))
    # variance 1e-6: 1e-3 / sqrt(1e-6 + 1e-5) = 0.30151
    assert torch.allclose(tiny, torch.tensor([[0.3015113, -0.3015113]]), atol=1e-4), (
        f"LayerNorm of [0.001, -0.001] should be [0.3015, -0.3015], since 0.001 / sqrt(1e-6 + 1e-5) = 0.3015; "
        f"got {_fmt(tiny)}. 1.0 means eps is missing; 0.99 means eps was added outside the square root."
    )
    flat = ns.LayerNorm(3)(torch.full((1, 3), 5.0))
    assert torch.isfinite(flat).all() and torch.allclose(flat, torch.zeros(1, 3)), (
        f"a constant row has variance 0 and should normalise to zeros (eps avoids dividing by 0); got {_fmt(flat)}"
    )


@public_test("layer_norm")
def scale_and_shift_are_applied(ns):
    """the result is scale * normalised + shift, feature by feature"""
    ln = ns.LayerNorm(4)
    with torch.no_grad():
        ln.scale.copy_(torch.tensor([1.0, 2.0, 0.0, -1.0]))
        ln.shift.copy_(torch.tensor([0.0, 1.0, 5.0, 0.5]))
    out = ln(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    expected = torch.tensor([[-1.3416354, 0.1055764, 5.0, -0.8416354]])
    assert torch.allclose(out, expected, atol=1e-5), (
        f"with scale [1, 2, 0, -1] and shift [0, 1, 5, 0.5], LayerNorm of [1, 2, 3, 4] should be {_fmt(expected)}; "
        f"got {_fmt(out)}. Multiply the normalised values by self.scale, then add self.shift."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: GELU
# ------------------------------------------------------------------------------------------------


@public_test("gelu")
def hand_values_of_the_tanh_approximation(ns):
    """GELU(0) = 0, GELU(1) = 0.841192, GELU(-2) = -0.045402 (tanh approximation)"""
    gelu = ns.GELU()
    assert isinstance(gelu, nn.Module), "GELU should be a subclass of nn.Module"
    x = torch.tensor([0.0, 1.0, -1.0, 2.0, -2.0, 0.5])
    out = _expect_tensor(gelu(x), "GELU()(x)")
    # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), evaluated by hand for each x
    expected = torch.tensor([0.0, 0.841192, -0.158808, 1.954598, -0.045402, 0.345714])
    assert torch.allclose(out, expected, atol=2e-6), (
        f"GELU({x.tolist()}) should be {expected.tolist()}; got {[round(v, 6) for v in out.tolist()]}. "
        "Values like 0.841345 for GELU(1) come from the exact (erf) GELU: this exercise asks for the tanh "
        "approximation, with the constant 0.044715."
    )


@public_test("gelu")
def shape_no_parameters_and_tails(ns):
    """GELU keeps the shape, has no parameters, and tends to x for large x and to 0 for very negative x"""
    gelu = ns.GELU()
    assert not list(gelu.parameters()), "GELU has nothing to learn: it should have no parameters"
    x = torch.randn(2, 3, 5, generator=_gen(1))
    assert gelu(x).shape == x.shape, f"GELU should keep the shape {tuple(x.shape)}, got {tuple(gelu(x).shape)}"
    tails = gelu(torch.tensor([10.0, -10.0, 30.0, -30.0]))
    assert torch.isfinite(tails).all(), f"GELU of large inputs should stay finite; got {tails.tolist()}"
    assert torch.allclose(tails, torch.tensor([10.0, 0.0, 30.0, 0.0]), atol=1e-5), (
        f"GELU(10) should be about 10 and GELU(-10) about 0; got {tails.tolist()}"
    )


# ------------------------------------------------------------------------------------------------
# Exercise 3: FeedForward
# ------------------------------------------------------------------------------------------------


@public_test("feed_forward")
def layers_named_and_shaped(ns):
    """self.layers = Sequential(Linear(d, 4d), GELU(), Linear(4d, d)): parameters layers.0 and layers.2"""
    ff = ns.FeedForward(dict(TINY))
    shapes = {name: tuple(p.shape) for name, p in ff.named_parameters()}
    expected = {"layers.0.weight": (32, 8), "layers.0.bias": (32,), "layers.2.weight": (8, 32), "layers.2.bias": (8,)}
    assert shapes == expected, (
        f"with emb_dim = 8 the parameters should be {expected} (the graders load weights by these names); "
        f"got {shapes}"
    )
    assert isinstance(ff.layers, nn.Sequential), "self.layers should be an nn.Sequential"
    assert not list(ff.layers[1].parameters()), "layers[1] should be the GELU activation (no parameters)"


@public_test("feed_forward")
def shape_and_position_wise(ns):
    """(B, T, d) -> (B, T, d), and each position is transformed on its own"""
    ff = _randomise(ns.FeedForward(dict(TINY)), 2)
    x = torch.randn(2, 5, 8, generator=_gen(3))
    out = ff(x)
    assert out.shape == (2, 5, 8), f"input (2, 5, 8) should give output (2, 5, 8), got {tuple(out.shape)}"
    x2 = x.clone()
    x2[:, 3] += 1.0
    changed = (ff(x2) - out).abs().amax(dim=(0, 2)) > 1e-6
    assert changed.tolist() == [False, False, False, True, False], (
        "changing position 3 of the input should change only position 3 of the output (the feed-forward "
        f"block mixes features, not positions); positions changed: {changed.tolist()}"
    )


@public_test("feed_forward")
def linear_gelu_linear_by_hand(ns):
    """with hand-set weights the block computes layers.2(GELU(layers.0(x)))"""
    ff = ns.FeedForward({**TINY, "emb_dim": 1})  # hidden width 4
    with torch.no_grad():
        ff.layers[0].weight.copy_(torch.tensor([[1.0], [2.0], [-1.0], [0.0]]))
        ff.layers[0].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.5]))
        ff.layers[2].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 2.0]]))
        ff.layers[2].bias.copy_(torch.tensor([0.25]))
    with torch.no_grad():
        out = ff(torch.tensor([[1.0]]))
    # hidden [1, 2, -1, 0.5] -> GELU [0.841192, 1.954598, -0.158808, 0.345714] -> dot [1, 1, 1, 2] + 0.25
    expected = 0.841192 + 1.954598 - 0.158808 + 2 * 0.345714 + 0.25
    assert out.shape == (1, 1) and abs(float(out) - expected) < 1e-5, (
        f"expected {expected:.6f} = layers.2(GELU(layers.0(x))); got {out.tolist()}. Check the order of the "
        "three layers and that the activation is your GELU."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 4: TransformerBlock
# ------------------------------------------------------------------------------------------------


def _zero_linear(layer):
    with torch.no_grad():
        layer.weight.zero_()
        if layer.bias is not None:
            layer.bias.zero_()


@public_test("transformer_block")
def submodules_and_shape(ns):
    """att, ff, norm1, norm2 and drop_shortcut exist; (B, T, d) -> (B, T, d) for T <= context_length"""
    block = ns.TransformerBlock(dict(TINY)).eval()
    for name in ("att", "ff", "norm1", "norm2", "drop_shortcut"):
        assert isinstance(getattr(block, name, None), nn.Module), f"the block should have a submodule `self.{name}`"
    assert isinstance(block.drop_shortcut, nn.Dropout), "self.drop_shortcut should be nn.Dropout(cfg['drop_rate'])"
    prefixes = {name.split(".")[0] for name, _ in block.named_parameters()}
    assert prefixes == {"att", "ff", "norm1", "norm2"}, (
        f"all parameters should live in att, ff, norm1 and norm2; found top-level names {sorted(prefixes)}"
    )
    query = getattr(block.att, "W_query", None)
    assert isinstance(query, nn.Linear) and (query.in_features, query.out_features) == (8, 8), (
        "att should be MultiHeadAttention(emb_dim, emb_dim, context_length, drop_rate, n_heads, qkv_bias)"
    )
    assert getattr(block.att, "num_heads", 2) == 2, "att should have n_heads = 2 heads here"
    for T in (3, 6):
        out = block(torch.randn(2, T, 8, generator=_gen(T)))
        assert out.shape == (2, T, 8), f"input (2, {T}, 8) should give (2, {T}, 8), got {tuple(out.shape)}"


@public_test("transformer_block")
def zero_branches_give_the_identity(ns):
    """with att.out_proj and ff.layers[2] set to zero, a pre-norm block returns its input unchanged"""
    block = ns.TransformerBlock(dict(TINY)).eval()  # default norms: scale 1, shift 0
    _zero_linear(block.att.out_proj)
    _zero_linear(block.ff.layers[2])
    x = torch.randn(2, 4, 8, generator=_gen(5)) * 3 + 1
    out = block(x)
    if torch.allclose(out, torch.zeros_like(out)):
        raise AssertionError("the output is all zeros: the residual connections (x + ...) are missing")
    assert torch.allclose(out, x, atol=1e-5), (
        "both branches output zeros here, so x + 0 + 0 = x must come out unchanged. If your output rows have "
        "mean 0 and variance 1, the block normalises *after* adding (post-norm); this block is pre-norm: "
        "x = x + drop_shortcut(att(norm1(x))), then x = x + drop_shortcut(ff(norm2(x)))."
    )


@public_test("transformer_block")
def each_branch_by_hand(ns):
    """each residual branch is x + att(norm1(x)) and x + ff(norm2(x)), with the right norm"""
    block = _randomise(ns.TransformerBlock(dict(TINY)), 6).eval()
    x = torch.randn(1, 5, 8, generator=_gen(7))
    with torch.no_grad():
        saved = [t.clone() for t in (block.ff.layers[2].weight, block.ff.layers[2].bias)]
        _zero_linear(block.ff.layers[2])  # only the attention branch is left
        expected = x + block.att(block.norm1(x))
        out = block(x)
        assert torch.allclose(out, expected, atol=1e-5), (
            "with the feed-forward branch switched off the block should return x + att(norm1(x)); it does not"
        )
        block.ff.layers[2].weight.copy_(saved[0])
        block.ff.layers[2].bias.copy_(saved[1])
        _zero_linear(block.att.out_proj)  # only the feed-forward branch is left
        expected = x + block.ff(block.norm2(x))
        out = block(x)
        assert torch.allclose(out, expected, atol=1e-5), (
            "with the attention branch switched off the block should return x + ff(norm2(x)) "
            "(norm2, not norm1, in front of the feed-forward); it does not"
        )


@public_test("transformer_block")
def block_is_causal(ns):
    """the output at position t does not change when later tokens change"""
    block = _randomise(ns.TransformerBlock(dict(TINY)), 8).eval()
    x = torch.randn(2, 6, 8, generator=_gen(9))
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 8, generator=_gen(10))
    with torch.no_grad():
        a, b = block(x), block(x2)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-5), (
        "changing tokens 4 and 5 changed the output at positions 0..3: the block can see the future. "
        "Is your pasted MultiHeadAttention causal?"
    )


# ------------------------------------------------------------------------------------------------
# Exercise 5: GPTModel
# ------------------------------------------------------------------------------------------------


def _tiny_names(n_layers):
    names = {"tok_emb.weight", "pos_emb.weight", "final_norm.scale", "final_norm.shift", "out_head.weight"}
    for i in range(n_layers):
        block = f"trf_blocks.{i}"
        names |= {f"{block}.att.{lin}.weight" for lin in ("W_query", "W_key", "W_value", "out_proj")}
        names |= {f"{block}.att.out_proj.bias", f"{block}.ff.layers.0.weight", f"{block}.ff.layers.0.bias",
                  f"{block}.ff.layers.2.weight", f"{block}.ff.layers.2.bias"}
        names |= {f"{block}.{norm}.{p}" for norm in ("norm1", "norm2") for p in ("scale", "shift")}
    return names


@public_test("gpt_model")
def logits_shape_for_any_length(ns):
    """(B, T) token ids -> (B, T, vocab_size) logits, for every T up to context_length"""
    model = ns.GPTModel(dict(TINY)).eval()
    for T in (1, 4, 6):
        ids = torch.randint(0, 11, (2, T), generator=_gen(T))
        out = _expect_tensor(model(ids), "GPTModel(cfg)(ids)")
        assert out.shape == (2, T, 11), (
            f"ids of shape (2, {T}) should give logits of shape (2, {T}, 11), got {tuple(out.shape)}. "
            + ("If this fails only for T < context_length, slice the positions to 0..T-1." if T < 6 else "")
        )


@public_test("gpt_model")
def parameter_names_and_count(ns):
    """the state-dict names of the contract, and 1,936 parameters for the tiny configuration"""
    model = ns.GPTModel(dict(TINY))
    names = {name for name, _ in model.named_parameters()}
    expected = _tiny_names(2)
    assert names == expected, (
        "parameter names differ from the contract (the graders load weights by name). "
        f"Missing: {sorted(expected - names)[:6]}; unexpected: {sorted(names - expected)[:6]}"
    )
    assert model.out_head.bias is None, "out_head should be nn.Linear(emb_dim, vocab_size, bias=False)"
    assert isinstance(model.drop_emb, nn.Dropout), "drop_emb should be nn.Dropout(drop_rate)"
    count = sum(p.numel() for p in model.parameters())
    # tok 11*8 + pos 6*8 + 2 blocks * (att 4*64 + 8, ff 8*32 + 32 + 32*8 + 8, norms 4*8) + final 16 + head 11*8
    assert count == 1936, f"the tiny configuration has 1,936 parameters; your model has {count:,}"


@public_test("gpt_model")
def positions_are_embedded(ns):
    """the same token at different positions gets different logits, and eval mode is deterministic"""
    model = ns.GPTModel({**TINY, "drop_rate": 0.5}).eval()
    ids = torch.full((1, 5), 3)
    with torch.no_grad():
        out = model(ids)
        again = model(ids)
    assert torch.equal(out, again), "in eval mode two forward passes should give identical logits (dropout off)"
    assert not torch.allclose(out[0, 0], out[0, 4]), (
        "a sequence of five identical tokens gave the same logits at positions 0 and 4: add the position "
        "embeddings pos_emb(0..T-1) to the token embeddings"
    )
    model.train()
    assert not torch.equal(model(ids), model(ids)), (
        "with drop_rate = 0.5, two passes in training mode should differ: use nn.Dropout(cfg['drop_rate'])"
    )


# ------------------------------------------------------------------------------------------------
# Exercise 6: top_k_filter
# ------------------------------------------------------------------------------------------------


@public_test("top_k_filter")
def hand_examples_with_ties(ns):
    """top-k keeps every entry >= the k-th largest of its row (ties all kept) and sets the rest to -inf"""
    logits = torch.tensor([[1.0, 3.0, 2.0, 3.0, 0.0], [0.5, -1.0, 4.0, 2.0, 2.0]])
    out = _expect_tensor(ns.top_k_filter(logits, 3), "top_k_filter(logits, 3)")
    expected = torch.tensor([[-INF, 3.0, 2.0, 3.0, -INF], [-INF, -INF, 4.0, 2.0, 2.0]])
    assert out.shape == logits.shape and torch.equal(out, expected), (
        f"top_k_filter({logits.tolist()}, 3) should be {expected.tolist()}; got {out.tolist()}. "
        "Row 2's third largest value is 2, which appears twice: both are kept."
    )
    out = ns.top_k_filter(logits, 1)
    expected = torch.tensor([[-INF, 3.0, -INF, 3.0, -INF], [-INF, -INF, 4.0, -INF, -INF]])
    assert torch.equal(out, expected), (
        f"with k = 1 row 1 keeps both 3s (a tie for the largest) and row 2 keeps only 4; expected "
        f"{expected.tolist()}, got {out.tolist()}"
    )


@public_test("top_k_filter")
def edge_cases(ns):
    """k >= V keeps everything, the input is not modified, and k < 1 raises ValueError"""
    logits = torch.tensor([[0.3, -2.0, 1.5]])
    before = logits.clone()
    for k in (3, 10):
        out = ns.top_k_filter(logits, k)
        assert torch.equal(out, before), f"with k = {k} >= V = 3 every logit is kept; got {out.tolist()}"
    ns.top_k_filter(logits, 2)
    assert torch.equal(logits, before), "top_k_filter modified its input: return a new tensor instead"
    try:
        ns.top_k_filter(logits, 0)
    except ValueError:
        pass
    else:
        raise AssertionError("top_k_filter(logits, 0) should raise a ValueError: k must be at least 1")


# ------------------------------------------------------------------------------------------------
# Exercise 7: top_p_filter
# ------------------------------------------------------------------------------------------------


@public_test("top_p_filter")
def hand_examples_with_a_tie(ns):
    """probabilities [1/8, 1/2, 1/8, 1/4]: p = 0.3, 0.6 and 0.8 keep 1, 2 and all 4 tokens"""
    logits = torch.log(torch.tensor([[0.125, 0.5, 0.125, 0.25]])) + 2.0  # any shift gives the same softmax
    cases = {
        0.3: [False, True, False, False],  # the top token alone (1/2) already reaches 0.3
        0.6: [False, True, False, True],  # 1/2 < 0.6, so the 1/4 token is needed too
        0.8: [True, True, True, True],  # 3/4 < 0.8: one 1/8 token is needed, and its tie is kept with it
    }
    for p, keep in cases.items():
        out = _expect_tensor(ns.top_p_filter(logits, p), f"top_p_filter(logits, {p})")
        expected = torch.where(torch.tensor([keep]), logits, torch.full_like(logits, -INF))
        assert out.shape == logits.shape and torch.equal(out, expected), (
            f"probabilities [1/8, 1/2, 1/8, 1/4] with p = {p} should keep {keep} (kept logits unchanged, the "
            f"others -inf); got {_fmt(out)}. Token j is kept iff the tokens strictly more likely than j "
            "have a total probability < p."
        )


@public_test("top_p_filter")
def batch_and_edge_cases(ns):
    """rows are filtered independently, p = 1 keeps everything, p outside (0, 1] raises ValueError"""
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    before = logits.clone()
    out = ns.top_p_filter(logits, 1.0)
    assert torch.equal(out, before), f"p = 1 keeps every token unchanged; got {out.tolist()}"
    out = ns.top_p_filter(logits, 0.01)
    expected = torch.tensor([[2.0, -INF, -INF, -INF], [0.0, 0.0, 0.0, 0.0]])
    assert torch.equal(out, expected), (
        f"with p = 0.01 row 1 keeps only its most likely token, and row 2 (four equal logits, a four-way "
        f"tie) keeps all four; expected {expected.tolist()}, got {out.tolist()}"
    )
    assert torch.equal(logits, before), "top_p_filter modified its input: return a new tensor instead"
    for p in (0.0, -0.5, 1.5):
        try:
            ns.top_p_filter(logits, p)
        except ValueError:
            continue
        raise AssertionError(f"top_p_filter(logits, {p}) should raise a ValueError: p must be in (0, 1]")


# ------------------------------------------------------------------------------------------------
# Exercise 8: generate
# ------------------------------------------------------------------------------------------------


class _Successor(nn.Module):
    """A stand-in model with known answers: at every position it predicts (token + 1) mod vocab_size.

    It records the inputs it is called with and refuses inputs longer than ``max_len``.
    """

    def __init__(self, vocab_size=10, max_len=100):
        super().__init__()
        self.vocab_size, self.max_len, self.calls = vocab_size, max_len, []

    def forward(self, idx):
        self.calls.append(idx.clone())
        if idx.shape[1] > self.max_len:
            raise AssertionError(
                f"generate passed {idx.shape[1]} tokens to the model but context_size is {self.max_len}: "
                "crop the input to its last context_size tokens, idx[:, -context_size:]"
            )
        return F.one_hot((idx + 1) % self.vocab_size, self.vocab_size).float() * 5.0


class _Fixed(nn.Module):
    """A stand-in model whose next-token logits are the same at every position and every step."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.as_tensor(logits, dtype=torch.float32)

    def forward(self, idx):
        return self.logits.expand(idx.shape[0], idx.shape[1], -1).clone()


@public_test("generate")
def greedy_on_a_counting_model(ns):
    """temperature 0 is greedy; the prompt comes first; each row of a batch continues on its own"""
    prompt = torch.tensor([[2], [8]])
    out = _expect_tensor(ns.generate(_Successor(), prompt, 4, context_size=8), "generate")
    expected = torch.tensor([[2, 3, 4, 5, 6], [8, 9, 0, 1, 2]])
    assert out.shape == (2, 5), f"a (2, 1) prompt plus 4 new tokens should give shape (2, 5), got {tuple(out.shape)}"
    assert torch.equal(out, expected), (
        f"the stand-in model always predicts token + 1 (mod 10), so greedy decoding of [[2], [8]] should give "
        f"{expected.tolist()}; got {out.tolist()}"
    )
    assert ns.generate(_Successor(), prompt, 0, context_size=8).tolist() == prompt.tolist(), (
        "max_new_tokens = 0 should return the prompt unchanged"
    )


@public_test("generate")
def last_position_and_context_crop(ns):
    """the next token comes from the last position's logits, and the model sees at most context_size tokens"""
    model = _Successor(max_len=3)
    prompt = torch.tensor([[0, 7, 5, 1, 4]])
    out = ns.generate(model, prompt, 3, context_size=3)
    assert out.tolist() == [[0, 7, 5, 1, 4, 5, 6, 7]], (
        f"expected [[0, 7, 5, 1, 4, 5, 6, 7]]: the model predicts the last token + 1; got {out.tolist()}. "
        "Take the logits of the last position, logits[:, -1, :]."
    )
    assert model.calls and model.calls[0].tolist() == [[5, 1, 4]], (
        f"the first call should see the last 3 tokens [[5, 1, 4]], got {model.calls[0].tolist() if model.calls else None}"
    )


@public_test("generate")
def stops_at_eos(ns):
    """with eos_id, generation stops when the chosen token is eos_id (not appended, or appended: both accepted)"""
    out = ns.generate(_Successor(), torch.tensor([[0]]), 10, context_size=20, eos_id=3)
    assert out.tolist() in ([[0, 1, 2]], [[0, 1, 2, 3]]), (
        f"counting up from 0 with eos_id = 3 should stop at 3 and return [[0, 1, 2]]; got {out.tolist()}"
    )


@public_test("generate")
def sampling_rules(ns):
    """sampling: temperature, then top-k, then top-p, then torch.multinomial(probs, 1, generator=generator)"""
    model = _Fixed([2.0, 1.9, 1.8, 0.0, -1.0])
    prompt = torch.zeros(1, 1, dtype=torch.long)
    with torch.random.fork_rng(devices=[]):  # the notebook's random state is left alone
        torch.manual_seed(1)
        first = ns.generate(model, prompt, 60, 4, temperature=1.0, top_k=2, generator=_gen(123))
        torch.manual_seed(2)
        second = ns.generate(model, prompt, 60, 4, temperature=1.0, top_k=2, generator=_gen(123))
    drawn = set(first[0, 1:].tolist())
    assert drawn == {0, 1}, (
        f"with top_k = 2 only tokens 0 and 1 may be drawn, and in 60 draws both should appear; drew {sorted(drawn)}"
    )
    assert torch.equal(first, second), (
        "two runs with generators seeded alike gave different tokens: draw with "
        "torch.multinomial(probs, 1, generator=generator), not from the global random state"
    )
    # probabilities [0.6, 0.3, 0.1]; temperature 0.5 first gives [0.783, 0.196, 0.022], so top_p = 0.7
    # keeps token 0 alone. Filtering before the temperature would keep tokens 0 and 1.
    model = _Fixed(torch.log(torch.tensor([0.6, 0.3, 0.1])))
    out = ns.generate(model, prompt, 100, 4, temperature=0.5, top_p=0.7, generator=_gen(7))
    assert set(out[0, 1:].tolist()) == {0}, (
        "with probabilities [0.6, 0.3, 0.1], temperature 0.5 and top_p = 0.7 only token 0 may be drawn; "
        f"drew {sorted(set(out[0, 1:].tolist()))}. Divide by the temperature before top-k and top-p."
    )


# ------------------------------------------------------------------------------------------------
# Exercise 9: generate_cached
# ------------------------------------------------------------------------------------------------


class _Attention(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.num_heads, self.head_dim = n_heads, d // n_heads
        self.W_query, self.W_key, self.W_value = (nn.Linear(d, d, bias=False) for _ in range(3))
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (lin(x).reshape(b, t, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
                   for lin in (self.W_query, self.W_key, self.W_value))
        mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(mixed.permute(0, 2, 1, 3).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.att = _Attention(d, n_heads)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d))
        self.drop_shortcut = nn.Dropout(0.0)

    def forward(self, x):
        x = x + self.att(self.norm1(x))
        return x + self.ff(self.norm2(x))


class _CountingEmbedding(nn.Embedding):
    """An embedding that counts how many positions it has embedded."""

    embedded = 0

    def forward(self, ids):
        self.embedded += ids.numel()
        return super().forward(ids)


class _TinyGPT(nn.Module):
    """A small GPT with the contract's attribute names, written with PyTorch built-ins."""

    def __init__(self, vocab=13, context=8, d=16, n_heads=4, n_layers=2, seed=0):
        super().__init__()
        torch.manual_seed(seed)  # _tiny_gpt restores the notebook's random state afterwards
        self.tok_emb, self.pos_emb = _CountingEmbedding(vocab, d), nn.Embedding(context, d)
        self.drop_emb = nn.Dropout(0.0)
        self.trf_blocks = nn.Sequential(*(_Block(d, n_heads) for _ in range(n_layers)))
        self.final_norm, self.out_head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        with torch.no_grad():  # livelier logits than the default initialisation
            self.out_head.weight.mul_(4.0)

    def forward(self, idx):
        stream = self.drop_emb(self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1])))
        for block in self.trf_blocks:
            stream = block(stream)
        return self.out_head(self.final_norm(stream))


def _tiny_gpt(seed):
    with torch.random.fork_rng(devices=[]):
        return _TinyGPT(seed=seed).eval()


@torch.no_grad()
def _greedy(model, idx, n, context):
    for _ in range(n):
        nxt = model(idx[:, -context:])[:, -1].argmax(-1, keepdim=True)
        idx = torch.cat([idx, nxt], dim=1)
    return idx


@public_test("generate_cached")
def same_tokens_as_plain_greedy_decoding(ns):
    """greedy generate_cached gives the tokens of plain greedy decoding, also once the window slides"""
    model = _tiny_gpt(11)
    prompts = {"a prompt that fits, staying within the context": (torch.tensor([[1, 5, 2], [7, 7, 0]]), 5),
               "a prompt that fits, then the window slides": (torch.tensor([[4, 9, 3]]), 9),
               "a prompt longer than context_size": (torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3]]), 4)}
    for what, (prompt, n) in prompts.items():
        expected = _greedy(model, prompt, n, 8)
        out = _expect_tensor(ns.generate_cached(model, prompt, n, 8), "generate_cached")
        assert out.shape == expected.shape and torch.equal(out, expected), (
            f"{what}: expected {expected.tolist()}, got {out.tolist()}. Check the positions of the new tokens "
            "(pos_emb of their absolute position), that queries see the cached keys, and that the cache is "
            "rebuilt from the last context_size tokens once the sequence is longer than that."
        )


@public_test("generate_cached")
def each_position_embedded_once(ns):
    """while the sequence fits, each position goes through tok_emb once (the KV cache at work)"""
    model = _tiny_gpt(12)
    prompt = torch.tensor([[2, 4, 6], [1, 3, 5]])
    model.tok_emb.embedded = 0
    out = ns.generate_cached(model, prompt, 4, 8)
    n = model.tok_emb.embedded
    assert 2 * 3 <= n <= 2 * 7, (
        f"a (2, 3) prompt and 4 new tokens have at most 2 * 7 = 14 positions, but tok_emb embedded {n}. "
        "With a KV cache, run the prompt through the model once, then only each new token."
    )
    assert torch.equal(out, _greedy(model, prompt, 4, 8)), "the tokens differ from plain greedy decoding"


@public_test("generate_cached")
def stops_at_eos_like_generate(ns):
    """with eos_id, generate_cached stops where plain decoding first chooses eos_id"""
    model = _tiny_gpt(13)
    prompt = torch.tensor([[0, 6]])
    full = _greedy(model, prompt, 6, 8)[0, 2:].tolist()
    eos = full[2]
    stop = full.index(eos)
    out = ns.generate_cached(model, prompt, 6, 8, eos_id=eos).tolist()
    accepted = ([[0, 6] + full[:stop]], [[0, 6] + full[: stop + 1]])
    assert out in accepted, (
        f"plain decoding continues with {full}; with eos_id = {eos} generation should stop at its first "
        f"occurrence and return {accepted[0]}; got {out}"
    )
