"""The week-6 oracle is LoRA as Hugging Face PEFT implements it, and the worker's stand-ins equal it.

PEFT runs offline on models built here (a one-layer module and the reference GPT); nothing is
downloaded. The same ``nn.Linear`` wrapped by PEFT (``LoraConfig(r, lora_alpha, target_modules)``) and by
``reference.lora`` with the same A and B gives the same outputs, gradients, merged weights and trainable
parameters; A starts from the same distribution; the target-name rule picks the same layers.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.sandbox.parts import gpt as gpt_parts
from autograder.sandbox.parts import lora as parts
from autograder.sandbox.parts import lora_tools as tools
from reference import gpt as gref
from reference import lora as ref

peft = pytest.importorskip("peft")  # a dev dependency: present in ./dev test
from peft import LoraConfig, get_peft_model, inject_adapter_in_model  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402

torch.set_num_threads(1)

shapes = st.fixed_dictionaries({"in": st.integers(1, 10), "out": st.integers(1, 10), "r": st.integers(1, 6),
                                "alpha": st.sampled_from([1, 2, 8, 16, 0.5, 3.0]), "bias": st.booleans(),
                                "lead": st.lists(st.integers(1, 3), max_size=2)})
cases = settings(max_examples=25, deadline=None, derandomize=True, database=None)


class OneLayer(nn.Module):
    def __init__(self, d_in: int, d_out: int, bias: bool):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out, bias=bias)

    def forward(self, x):
        return self.proj(x)


def peft_and_reference(s: dict, seed: int, dropout: float = 0.0):
    """PEFT's adapter and the reference's around copies of one float64 nn.Linear, with the same random
    non-zero A and B (PEFT's, copied into the reference)."""
    torch.manual_seed(seed)
    model = OneLayer(s["in"], s["out"], s["bias"]).double()
    base = copy.deepcopy(model.proj)
    wrapped = get_peft_model(model, LoraConfig(r=s["r"], lora_alpha=s["alpha"], target_modules=["proj"],
                                               lora_dropout=dropout))
    layer = wrapped.base_model.model.proj
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_()
    ours = ref.LoRALinear(base, s["r"], s["alpha"], dropout)
    with torch.no_grad():
        ours.lora_A.copy_(layer.lora_A["default"].weight)
        ours.lora_B.copy_(layer.lora_B["default"].weight)
    return wrapped, layer, ours


@cases
@given(s=shapes, seed=st.integers(0, 10_000))
def test_forward_and_gradients_equal_peft(s, seed):
    wrapped, layer, ours = peft_and_reference(s, seed)
    assert layer.scaling["default"] == pytest.approx(ours.scaling) == pytest.approx(s["alpha"] / s["r"])
    x = torch.randn(*s["lead"], s["in"], dtype=torch.float64)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    cot = torch.randn(*s["lead"], s["out"], dtype=torch.float64)
    out_peft, out_ours = wrapped(x1), ours(x2)
    torch.testing.assert_close(out_ours, out_peft, rtol=1e-12, atol=1e-12)
    (out_peft * cot).sum().backward()
    (out_ours * cot).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.lora_A.grad, layer.lora_A["default"].weight.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.lora_B.grad, layer.lora_B["default"].weight.grad, rtol=1e-12, atol=1e-12)
    # frozen base, in both
    assert ours.base.weight.grad is None and layer.base_layer.weight.grad is None
    assert {n for n, p in ours.named_parameters() if p.requires_grad} == {"lora_A", "lora_B"}


@cases
@given(s=shapes, seed=st.integers(0, 10_000))
def test_merge_equals_peft_merge_and_leaves_the_adapter_intact(s, seed):
    wrapped, _, ours = peft_and_reference(s, seed)
    before = {n: p.detach().clone() for n, p in ours.named_parameters()}
    merged = ours.merge()
    assert type(merged) is nn.Linear
    peft_linear = wrapped.merge_and_unload().proj  # PEFT folds W + scaling * B @ A into the base layer
    assert type(peft_linear) is nn.Linear
    torch.testing.assert_close(merged.weight, peft_linear.weight, rtol=1e-12, atol=1e-12)
    if s["bias"]:
        torch.testing.assert_close(merged.bias, peft_linear.bias, rtol=0, atol=0)
    torch.testing.assert_close(merged.weight, ours.base.weight + ours.scaling * ours.lora_B @ ours.lora_A)
    for n, p in ours.named_parameters():
        assert torch.equal(p, before[n]), n
    with torch.no_grad():
        merged.weight.zero_()  # nothing shared with the adapter
    assert torch.equal(ours.base.weight, before["base.weight"])


@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(s=shapes, seed=st.integers(0, 10_000))
def test_dropout_acts_on_the_adapter_input_like_peft(s, seed):
    """Same seed, same masks: PEFT applies lora_dropout to x before A, the reference does too."""
    wrapped, _, ours = peft_and_reference(s, seed, dropout=0.5)
    wrapped.train()
    ours.train()
    x = torch.randn(*s["lead"], 4, s["in"], dtype=torch.float64)
    torch.manual_seed(seed)
    a = wrapped(x)
    torch.manual_seed(seed)
    b = ours(x)
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def _ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = a.flatten().double().sort().values, b.flatten().double().sort().values
    grid = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, grid, right=True) / len(a)
    cdf_b = torch.searchsorted(b, grid, right=True) / len(b)
    return float((cdf_a - cdf_b).abs().max())


@pytest.mark.parametrize("d_in,r", [(512, 16), (40, 64)])
def test_initialisation_matches_peft(d_in, r):
    """A is Kaiming-uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in)) in PEFT and here; B is zero."""
    torch.manual_seed(0)
    model = get_peft_model(OneLayer(d_in, 7, True), LoraConfig(r=r, lora_alpha=8, target_modules=["proj"]))
    a_peft = model.base_model.model.proj.lora_A["default"].weight.detach()
    assert torch.equal(model.base_model.model.proj.lora_B["default"].weight, torch.zeros(7, r))
    ours = ref.LoRALinear(nn.Linear(d_in, 7), r, 8)
    assert torch.equal(ours.lora_B, torch.zeros(7, r)) and ours.lora_A.shape == a_peft.shape
    bound = 1 / math.sqrt(d_in)
    for a in (a_peft, ours.lora_A.detach()):
        assert float(a.abs().max()) <= bound * (1 + 1e-6)
        assert float(a.abs().max()) > 0.98 * bound
        assert abs(float(a.double().std()) - bound / math.sqrt(3)) < 0.05 * bound
    # both samples from the same distribution (critical value at 0.1% for these sizes is about 0.03-0.04)
    assert _ks_statistic(a_peft, ours.lora_A.detach()) < 1.95 * math.sqrt(2 / a_peft.numel())
    # and the same distribution as nn.Linear's own weight init, which PEFT's comment cites
    lin = nn.Linear(d_in, r)
    assert _ks_statistic(lin.weight.detach(), ours.lora_A.detach()) < 1.95 * math.sqrt(2 / a_peft.numel())


def test_rslora_scaling_equals_peft():
    model = get_peft_model(OneLayer(6, 6, True), LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=["proj"]))
    assert model.base_model.model.proj.scaling["default"] == pytest.approx(ref.rslora_scaling(8, 4)) == 4.0


# --------------------------------------------------------------------------- which layers, which parameters
GPT_CFG = {"vocab_size": 11, "context_length": 6, "emb_dim": 8, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0,
           "qkv_bias": True}
TARGET_LISTS = [["W_query", "W_value"], ["att.W_query"], ["out_proj", "layers.0", "layers.2"], ["out_head"],
                ["trf_blocks.1.att.W_key"], ["W_query", "W_key", "W_value", "out_proj", "layers.0", "layers.2"],
                ["ff.layers.2", "trf_blocks.0.att.W_value"]]


@pytest.mark.parametrize("targets", TARGET_LISTS)
def test_target_rule_and_trainable_parameters_equal_peft(targets):
    torch.manual_seed(0)
    base = gref.GPTModel(GPT_CFG).double().eval()
    peft_model = inject_adapter_in_model(LoraConfig(r=3, lora_alpha=6, target_modules=targets), copy.deepcopy(base))
    ours = ref.apply_lora(copy.deepcopy(base), 3, 6.0, targets)
    peft_layers = {n for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)}
    our_layers = {n for n, m in ours.named_modules() if isinstance(m, ref.LoRALinear)}
    assert our_layers == peft_layers == set(ref.lora_targets(base, targets))
    assert ref.count_trainable_parameters(ours) == sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    # same A and B -> same logits, and merging gives the same weights as PEFT's merge
    with torch.no_grad():
        for name in our_layers:
            p_layer, o_layer = peft_model.get_submodule(name), ours.get_submodule(name)
            p_layer.lora_B["default"].weight.normal_()
            o_layer.lora_A.copy_(p_layer.lora_A["default"].weight)
            o_layer.lora_B.copy_(p_layer.lora_B["default"].weight)
    idx = torch.randint(0, 11, (2, 6))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), peft_model(idx), rtol=1e-10, atol=1e-10)
    for name in our_layers:
        p_layer = peft_model.get_submodule(name)
        p_layer.merge()
        torch.testing.assert_close(ours.get_submodule(name).merge().weight, p_layer.base_layer.weight,
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("targets", [["query"], ["proj"], ["no_such_layer"]])
def test_names_that_match_nothing_are_refused_like_peft(targets):
    base = gref.GPTModel(GPT_CFG)
    with pytest.raises(ValueError):  # PEFT's NoMatchingPeftModuleError is a ValueError
        inject_adapter_in_model(LoraConfig(r=2, lora_alpha=4, target_modules=targets), copy.deepcopy(base))
    with pytest.raises(ValueError):
        ref.apply_lora(copy.deepcopy(base), 2, 4.0, targets)


def test_the_reference_is_stricter_than_peft_on_bad_targets():
    """PEFT accepts a list where only some names match and refuses non-Linear targets with ValueError;
    the course asks for an error on every unmatched name and TypeError for a module that is not Linear."""
    base = gref.GPTModel(GPT_CFG)
    inject_adapter_in_model(LoraConfig(r=2, lora_alpha=4, target_modules=["W_query", "nope"]), copy.deepcopy(base))
    with pytest.raises(ValueError, match="nope"):
        ref.apply_lora(copy.deepcopy(base), 2, 4.0, ["W_query", "nope"])
    for targets in (["norm1"], ["trf_blocks.0.att"]):
        with pytest.raises(TypeError):
            ref.apply_lora(copy.deepcopy(base), 2, 4.0, targets)
    model = copy.deepcopy(base)
    with pytest.raises(TypeError):
        ref.apply_lora(model, 2, 4.0, ["W_query", "norm2"])
    assert all(p.requires_grad for p in model.parameters()), "the model changed before the error"
    for r in (0, -1, 2.0, True):
        with pytest.raises(ValueError):
            ref.LoRALinear(nn.Linear(3, 3), r, 4.0)
    with pytest.raises(TypeError):
        ref.LoRALinear(nn.Embedding(3, 3), 2, 4.0)


def test_merge_lora_restores_the_base_layout():
    torch.manual_seed(1)
    base = gref.GPTModel(GPT_CFG).double().eval()
    model = ref.apply_lora(copy.deepcopy(base), 2, 4.0, ["W_query", "layers.2", "out_head"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_()
    idx = torch.randint(0, 11, (2, 6))
    with torch.no_grad():
        adapted = model(idx)
    merged = ref.merge_lora(model)
    assert not any(isinstance(m, ref.LoRALinear) for m in merged.modules())
    assert [n for n, _ in merged.named_parameters()] == [n for n, _ in base.named_parameters()]
    with torch.no_grad():
        torch.testing.assert_close(merged(idx), adapted, rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------------- the worker's stand-ins (parts)
@cases
@given(s=shapes, seed=st.integers(0, 10_000), dropout=st.sampled_from([0.0, 0.5]))
def test_part_lora_linear_equals_the_reference(s, seed, dropout):
    torch.manual_seed(seed)
    base = nn.Linear(s["in"], s["out"], bias=s["bias"]).double()
    torch.manual_seed(seed + 1)
    want = ref.LoRALinear(copy.deepcopy(base), s["r"], s["alpha"], dropout)
    torch.manual_seed(seed + 1)
    got = parts.LoRALinear(copy.deepcopy(base), s["r"], s["alpha"], dropout)
    # the same distribution drawn the same way: the same A from the same seed
    torch.testing.assert_close(got.lora_A, want.lora_A, rtol=1e-12, atol=1e-15)
    assert [(n, p.shape, p.dtype, p.requires_grad) for n, p in got.named_parameters()] == \
        [(n, p.shape, p.dtype, p.requires_grad) for n, p in want.named_parameters()]
    assert (got.r, got.alpha, got.scaling) == (want.r, want.alpha, want.scaling)
    with torch.no_grad():
        want.lora_B.normal_()
        got.lora_B.copy_(want.lora_B)
    x = torch.randn(*s["lead"], 3, s["in"], dtype=torch.float64)
    torch.manual_seed(seed)  # training mode: the same dropout masks
    a = got(x)
    torch.manual_seed(seed)
    torch.testing.assert_close(a, want(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.merge().weight, want.merge().weight, rtol=1e-12, atol=1e-12)
    assert type(got.merge()) is nn.Linear and got.merge().weight.data_ptr() != got.base.weight.data_ptr()
    for r in (0, -3):
        with pytest.raises(ValueError):
            parts.LoRALinear(nn.Linear(2, 2), r, 1.0)
    with pytest.raises(TypeError):
        parts.LoRALinear(nn.LayerNorm(2), 1, 1.0)


@pytest.mark.parametrize("targets", TARGET_LISTS + [["query"], ["norm1"], ["W_query", "nope"], []])
def test_part_apply_and_merge_equal_the_reference(targets):
    torch.manual_seed(2)
    want_model = gref.GPTModel(GPT_CFG).eval()
    got_model = gpt_parts.GPTModel(GPT_CFG).eval()
    got_model.load_state_dict(want_model.state_dict())
    try:
        ref.apply_lora(want_model, 2, 4.0, targets)
    except (ValueError, TypeError) as exc:
        with pytest.raises(type(exc)):
            parts.apply_lora(got_model, 2, 4.0, targets)
        return
    parts.apply_lora(got_model, 2, 4.0, targets)
    assert tools.lora_describe(got_model) == {n: [list(p.shape), "float32", "cpu", p.requires_grad]
                                              for n, p in want_model.named_parameters()}
    assert {n for n, v in tools.lora_modules(got_model).items() if v[2]} == \
        {n for n, m in want_model.named_modules() if isinstance(m, ref.LoRALinear)}
    with torch.no_grad():
        for name, p in want_model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_()
    got_model.load_state_dict(want_model.state_dict())
    idx = torch.randint(0, 11, (2, 6))
    with torch.no_grad():
        torch.testing.assert_close(got_model(idx), want_model(idx), rtol=1e-4, atol=1e-5)
    parts.merge_lora(got_model)
    ref.merge_lora(want_model)
    assert {n: p.detach() for n, p in got_model.named_parameters()}.keys() == dict(want_model.named_parameters()).keys()
    for n, p in want_model.named_parameters():
        torch.testing.assert_close(tools.lora_parameters(got_model)[n], p.detach(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("tied", [False, True])
def test_part_helpers(tied):
    model = tools.lora_toy_model(tied=tied, seed=5)
    torch.manual_seed(5)
    twin = tools.ToyModel(tied=tied)
    assert tools.lora_parameters(model).keys() == dict(twin.named_parameters()).keys()
    assert ("head.weight" in tools.lora_describe(model)) is not tied  # shared: listed once, as embed.weight
    targets = ["layers.0", "query", "heads.1", "head"]
    parts.apply_lora(model, 3, 6.0, targets)
    ref.apply_lora(twin, 3, 6.0, targets)
    assert {n for n, v in tools.lora_modules(model).items() if v[2]} == set(ref.lora_targets(tools.ToyModel(), targets))
    assert ref.count_trainable_parameters(twin) == sum(v[0][0] * v[0][1] for v in tools.lora_describe(model).values()
                                                       if v[3])
    idx = torch.randint(0, 7, (2, 5))
    before = tools.lora_parameters(model)
    losses = tools.lora_train_steps(model, idx, idx)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    after = tools.lora_parameters(model)
    assert {n for n in before if not torch.equal(before[n], after[n])} == \
        {n for n, v in tools.lora_describe(model).items() if v[3]}
    tools.lora_freeze(model, ["embed.weight"])
    assert {n for n, v in tools.lora_describe(model).items() if not v[3]} == {"embed.weight"}
    merged = parts.merge_lora(model)
    tools.lora_zero_(merged)
    assert all(float(v.abs().sum()) == 0 for v in tools.lora_parameters(merged).values())
    # the helpers answer None for what is not a module, instead of failing
    assert tools.lora_describe(3) is None and tools.lora_modules("x") is None and tools.lora_parameters(None) is None
    assert tools.lora_train_steps(nn.Linear(2, 2), torch.zeros(1, dtype=torch.long), torch.zeros(1)) is None
    lin = tools.lora_linear_layer(3, 2, False, "float64")
    assert lin.weight.dtype == torch.float64 and lin.bias is None
