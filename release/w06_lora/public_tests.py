"""Public tests for week 6 (LoRA): small, instant checks shipped with the notebook.

They use tiny models built here and examples worked out by hand; there is no reference implementation
here. The hidden tests check the same contract much more thoroughly, on a GPT model of their own.
"""

import math

import torch
import torch.nn as nn

from autograder.student.public import public_test


class _Tiny(nn.Module):
    """A small stand-in for a GPT: an embedding, a block holding two projections and a norm, a head."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.block = nn.ModuleDict({"W_query": nn.Linear(8, 8), "W_value": nn.Linear(8, 8, bias=False),
                                    "norm": nn.LayerNorm(8)})
        self.out_head = nn.Linear(8, 10, bias=False)

    def forward(self, idx):
        h = self.emb(idx)
        mixed = self.block["norm"](h + self.block["W_query"](h) * self.block["W_value"](h))
        return self.out_head(mixed)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return _Tiny()


def _raises(call, what):
    try:
        call()
    except (ValueError, TypeError):
        return
    raise AssertionError(f"{what} should raise ValueError or TypeError")


def _names(model, trainable=None):
    return {n for n, p in model.named_parameters() if trainable is None or p.requires_grad == trainable}


# ------------------------------------------------------------------------------------------------
# Exercise 1: count_trainable_parameters
# ------------------------------------------------------------------------------------------------


@public_test("count_trainable_parameters")
def counts_only_trainable(ns):
    """Linear(3, 4) then Linear(4, 2) has 26 parameters; with the first frozen, 10 are trainable"""
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    n = ns.count_trainable_parameters(model)
    assert isinstance(n, int) and not isinstance(n, bool), (
        f"count_trainable_parameters should return a Python int, got {type(n).__name__} (use int(...) or sum "
        "over p.numel())"
    )
    assert n == 26, f"3 * 4 + 4 + 4 * 2 + 2 = 26 parameters, all trainable; got {n}"
    model[0].requires_grad_(False)
    n = ns.count_trainable_parameters(model)
    assert n == 10, f"with the first layer frozen only 4 * 2 + 2 = 10 are trainable; got {n} (check requires_grad)"


@public_test("count_trainable_parameters")
def shared_parameter_counts_once(ns):
    """a weight shared by an embedding and an output head counts once"""
    emb, head = nn.Embedding(5, 3), nn.Linear(3, 5, bias=False)
    head.weight = emb.weight  # tied: one (5, 3) tensor used by both modules
    n = ns.count_trainable_parameters(nn.ModuleList([emb, head]))
    assert n == 15, f"the tied (5, 3) weight is one parameter of 15 values; got {n}"


# ------------------------------------------------------------------------------------------------
# Exercise 2: LoRALinear
# ------------------------------------------------------------------------------------------------


@public_test("lora_linear")
def parameters_and_freezing(ns):
    """base.weight and base.bias frozen; lora_A (r, in) and lora_B (out, r) trainable; B starts at zero"""
    base = nn.Linear(6, 4)
    weight = base.weight.detach().clone()
    layer = ns.LoRALinear(base, 2, 4.0)
    assert isinstance(layer, nn.Module), "LoRALinear should be an nn.Module"
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    expected = {"base.weight": (4, 6), "base.bias": (4,), "lora_A": (2, 6), "lora_B": (4, 2)}
    assert shapes == expected, f"expected the parameters {expected}, got {shapes}"
    assert _names(layer, trainable=True) == {"lora_A", "lora_B"}, (
        f"only lora_A and lora_B should be trainable; trainable: {sorted(_names(layer, trainable=True))}"
    )
    assert torch.equal(layer.lora_B, torch.zeros(4, 2)), "lora_B should start as zeros"
    assert torch.equal(layer.base.weight, weight), "the base layer's weights must not change"
    assert layer.lora_A.abs().max() <= 1 / math.sqrt(6) + 1e-6 and layer.lora_A.abs().max() > 0, (
        "lora_A should be Kaiming-uniform: random values in [-1/sqrt(in_features), 1/sqrt(in_features)]"
    )


@public_test("lora_linear")
def starts_as_the_base_layer(ns):
    """a new LoRALinear computes exactly what its base layer computes"""
    torch.manual_seed(0)
    base = nn.Linear(5, 3)
    x = torch.randn(2, 4, 5)
    out = ns.LoRALinear(base, 4, 8.0)(x)
    assert out.shape == (2, 4, 3), f"input (2, 4, 5) should give (2, 4, 3), got {tuple(out.shape)}"
    assert torch.allclose(out, base(x), atol=1e-6), "with lora_B = 0 the output must equal base(x)"


@public_test("lora_linear")
def forward_by_hand(ns):
    """identity base, A = [[1, 2]], B = [[1], [0]], alpha / r = 2: x = [1, 1] gives [7, 1]"""
    base = nn.Linear(2, 2)
    with torch.no_grad():
        base.weight.copy_(torch.eye(2))
        base.bias.zero_()
    layer = ns.LoRALinear(base, 1, 2.0)
    with torch.no_grad():
        layer.lora_A.copy_(torch.tensor([[1.0, 2.0]]))
        layer.lora_B.copy_(torch.tensor([[1.0], [0.0]]))
    out = layer(torch.tensor([[1.0, 1.0]]))
    # base: [1, 1]; A x = 1 + 2 = 3; B (A x) = [3, 0]; times alpha / r = 2 / 1: [6, 0]; sum [7, 1]
    assert torch.allclose(out, torch.tensor([[7.0, 1.0]])), (
        f"expected [[7, 1]], got {out.tolist()}. (Got [[2.5, 1]]? The scaling is alpha / r, not r / alpha.)"
    )


@public_test("lora_linear")
def dropout_only_on_the_adapter(ns):
    """in training mode with dropout, the base path is never dropped; in eval mode nothing is"""
    torch.manual_seed(0)
    base = nn.Linear(4, 3)
    layer = ns.LoRALinear(base, 2, 2.0, dropout=0.9)
    x = torch.ones(50, 4)
    layer.train()
    out = layer(x)  # lora_B is still zero: whatever dropout does to the adapter's input, the update is 0
    assert torch.allclose(out, base(x), atol=1e-6), (
        "in training mode with lora_B = 0 the output must still equal base(x): apply dropout to the adapter's "
        "input (dropout(x) @ A.T @ B.T), never to the base layer's input or output"
    )
    with torch.no_grad():
        layer.lora_B.fill_(1.0)
    layer.eval()
    assert torch.equal(layer(x), layer(x)), "in eval mode dropout is off: two calls must give the same output"


@public_test("lora_linear")
def merge_is_a_new_linear(ns):
    """merge() returns an nn.Linear with the same output, and leaves the adapter unchanged"""
    torch.manual_seed(1)
    layer = ns.LoRALinear(nn.Linear(4, 3), 2, 4.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    before = {n: p.detach().clone() for n, p in layer.named_parameters()}
    x = torch.randn(5, 4)
    with torch.no_grad():
        adapted = layer(x)
    merged = layer.merge()
    now = dict(layer.named_parameters())
    for key in before:
        assert torch.equal(now[key], before[key]), (
            f"merge() changed the adapter's {key}: build a new nn.Linear instead of adding into base.weight"
        )
    assert type(merged) is nn.Linear, f"merge() should return a plain nn.Linear, got {type(merged).__name__}"
    with torch.no_grad():
        assert torch.allclose(merged(x), adapted, atol=1e-5), "merge()'s layer should compute what the adapter computes"
    with torch.no_grad():
        merged.weight.zero_()
    assert torch.equal(layer.base.weight, before["base.weight"]), (
        "zeroing the merged layer's weight changed the adapter's base weight: they share a tensor"
    )


@public_test("lora_linear")
def rejects_bad_arguments(ns):
    """r = 0 raises ValueError; a base that is not an nn.Linear raises TypeError"""
    _raises(lambda: ns.LoRALinear(nn.Linear(3, 3), 0, 1.0), "LoRALinear(nn.Linear(3, 3), r=0, alpha=1.0)")
    _raises(lambda: ns.LoRALinear(nn.Conv1d(3, 3, 1), 2, 1.0), "LoRALinear(nn.Conv1d(...), r=2, alpha=1.0)")


# ------------------------------------------------------------------------------------------------
# Exercise 3: apply_lora
# ------------------------------------------------------------------------------------------------


@public_test("apply_lora")
def adapts_the_named_layers(ns):
    """["W_query", "out_head"] adapts block.W_query and out_head; only lora_A and lora_B train"""
    model = _tiny()
    idx = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        before = model(idx)
    out = ns.apply_lora(model, 2, 4.0, ["W_query", "out_head"])
    assert out is model, "apply_lora should change the model in place and return it"
    adapted = {n for n, m in model.named_modules() if hasattr(m, "lora_A")}
    assert adapted == {"block.W_query", "out_head"}, f"expected block.W_query and out_head adapted, got {sorted(adapted)}"
    want = {"block.W_query.lora_A", "block.W_query.lora_B", "out_head.lora_A", "out_head.lora_B"}
    assert _names(model, trainable=True) == want, (
        f"only the adapters should be trainable (freeze first, then wrap); trainable: {sorted(_names(model, True))}"
    )
    assert "block.W_query.base.weight" in _names(model), "the adapted layer should be kept as .base"
    with torch.no_grad():
        assert torch.allclose(model(idx), before, atol=1e-6), "right after apply_lora the outputs must not change"


@public_test("apply_lora")
def names_match_whole_parts(ns):
    """"block.W_value" adapts one layer; "query" matches nothing and raises"""
    model = ns.apply_lora(_tiny(), 2, 4.0, ["block.W_value"])
    assert {n for n, m in model.named_modules() if hasattr(m, "lora_A")} == {"block.W_value"}
    _raises(lambda: ns.apply_lora(_tiny(), 2, 4.0, ["query"]),
            'apply_lora(model, 2, 4.0, ["query"]) (no module is named "query" or "*.query")')


@public_test("apply_lora")
def rejects_bad_targets(ns):
    """a name that matches nothing, or a module that is not nn.Linear ("norm"), raises"""
    _raises(lambda: ns.apply_lora(_tiny(), 2, 4.0, ["W_query", "W_qeury"]),
            'apply_lora(model, 2, 4.0, ["W_query", "W_qeury"]) (the typo matches nothing)')
    _raises(lambda: ns.apply_lora(_tiny(), 2, 4.0, ["norm"]), 'apply_lora(model, 2, 4.0, ["norm"]) (a LayerNorm)')


# ------------------------------------------------------------------------------------------------
# Exercise 4: merge_lora
# ------------------------------------------------------------------------------------------------


@public_test("merge_lora")
def merges_every_adapter(ns):
    """after merge_lora: no adapter left, the original parameter names, the adapted model's outputs"""
    names = [n for n, _ in _tiny().named_parameters()]
    model = ns.apply_lora(_tiny(), 2, 4.0, ["W_query", "W_value", "out_head"])
    with torch.no_grad():
        for key, value in model.named_parameters():
            if key.endswith("lora_B"):
                value.normal_()
    idx = torch.tensor([[4, 0, 9, 9]])
    with torch.no_grad():
        adapted = model(idx)
    out = ns.merge_lora(model)
    assert out is model, "merge_lora should change the model in place and return it"
    left = [n for n, m in model.named_modules() if hasattr(m, "lora_A")]
    assert not left, f"these adapters were not merged: {left}"
    assert [n for n, _ in model.named_parameters()] == names, (
        "after merge_lora the parameters should have their original names (block.W_query.weight, ...)"
    )
    with torch.no_grad():
        assert torch.allclose(model(idx), adapted, atol=1e-5), "the merged model should give the adapted model's outputs"


@public_test("merge_lora")
def merges_at_any_depth(ns):
    """adapters inside nested containers become plain nn.Linear layers with the merged weight"""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), nn.ModuleList([nn.Linear(3, 2)]))
    ns.apply_lora(model, 1, 1.0, ["0.0", "1.0"])
    deep = model[0][0]
    with torch.no_grad():
        deep.lora_B.fill_(1.0)
    expected = (deep.base.weight + deep.lora_B @ deep.lora_A).detach()  # alpha / r = 1
    ns.merge_lora(model)
    for where, layer in (("model[0][0]", model[0][0]), ("model[1][0]", model[1][0])):
        assert type(layer) is nn.Linear, f"{where} should be a plain nn.Linear after merge_lora, got {type(layer).__name__}"
    assert torch.allclose(model[0][0].weight, expected, atol=1e-6), "model[0][0].weight should be W + (alpha / r) B @ A"
