"""Hidden tests, week 6 (LoRA). 32 points in 19 tests: 194 hypothesis examples and 6 fixed cases.

Inputs are generated here (trusted) from small hypothesis draws (sizes, a rank, an alpha, a seed), so a
failure report shows the smallest failing draw; the reference (``reference/lora.py``, proven against
Hugging Face PEFT) runs in float64 on the same float32 values.

Each exercise is graded on its own. ``LoRALinear`` wraps a trusted ``nn.Linear`` built in the worker.
``apply_lora`` runs on the kit's GPT model (``student.part("GPTModel", cfg)``, the reference's weights
loaded) with the kit's ``LoRALinear`` swapped in for the student's during the call, and ``merge_lora``
runs on a model the kit's ``apply_lora`` adapted, with the kit's ``LoRALinear`` swapped in again: a bug
in ``LoRALinear`` costs points only there. Facts about modules inside the worker (parameter names,
``requires_grad``, which layers were replaced) come from the kit's helpers in ``sandbox/parts/lora.py``.

Tolerances: ``f32_tol(scale)`` (``autograder/compare.py``) where ``scale`` is the same computation done
on absolute values (every term counted positive), so it bounds float32 rounding whatever the order of
the sums; GPT outputs get ``f32_tol(200 * max|logits|)`` (LayerNorm amplifies rounding; the kit's float32
model itself differs from the float64 reference by up to about 2x ``f32_tol(max|logits|)``).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autograder.compare import assert_close, expect_tensor, f32_tol, graded
from autograder.proxy import Remote, StudentError
from autograder.sandbox.parts.lora_tools import ToyModel
from reference import gpt as gref
from reference import lora as ref

torch.set_num_threads(1)

points = pytest.mark.points
seeds = st.integers(0, 2**31 - 1)
ALPHAS = [1.0, 2.0, 3.0, 8.0, 16.0, 0.5]  # alpha == r for some draws, != r for most


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(shape, seed: int, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(tuple(shape), generator=gen(seed), dtype=torch.float64) * scale).float()


def as_float(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().float() for n, p in module.named_parameters()}


def module_handle(value, what: str) -> Remote:
    if not isinstance(value, Remote):
        raise AssertionError(f"{what} should return a module (an nn.Module object), got {type(value).__name__} "
                             f"{value!r:.60}")
    return value


def describe(student, module, what: str) -> dict:
    info = student.part("lora_describe", module)
    if info is None:
        raise AssertionError(f"{what} is not an nn.Module")
    return info


def expect_error(call, what: str, allowed=("ValueError", "TypeError")) -> None:
    try:
        call()
    except StudentError as exc:
        if exc.type_name not in allowed:
            raise AssertionError(f"{what} raised {exc.type_name}; expected {' or '.join(allowed)}") from None
        return
    raise AssertionError(f"{what} was accepted; it must raise {' or '.join(allowed)}")


# ------------------------------------------------------------------------------------------- LoRALinear
layer_shapes = st.fixed_dictionaries({"in": st.integers(1, 12), "out": st.integers(1, 12), "r": st.integers(1, 6),
                                      "alpha": st.sampled_from(ALPHAS), "bias": st.booleans()})
lead_dims = st.lists(st.integers(1, 4), min_size=0, max_size=2)  # x is (..., in_features)


def reference_pair(s: dict, seed: int, dropout: float = 0.0):
    """A float64 reference adapter with random base, A and B (B non-zero, as after training)."""
    torch.manual_seed(seed)
    base = torch.nn.Linear(s["in"], s["out"], bias=s["bias"]).double()
    adapter = ref.LoRALinear(base, s["r"], s["alpha"], dropout).eval()
    with torch.no_grad():
        adapter.lora_B.normal_(0.0, 1.0, generator=gen(seed + 1))
    return adapter


def remote_base(student, s: dict, adapter) -> Remote:
    base = student.part("lora_linear_layer", s["in"], s["out"], s["bias"])
    base.load_parameters(as_float(adapter.base))
    return base


def student_layer(student, s: dict, adapter, dropout: float = 0.0) -> Remote:
    """The student's LoRALinear around the same base, holding the reference's A and B, in eval mode."""
    layer = module_handle(student.LoRALinear(remote_base(student, s, adapter), s["r"], s["alpha"], dropout),
                          "LoRALinear(...)")
    layer.load_parameters(as_float(adapter))
    layer.method("eval")()
    return layer


def magnitude(adapter, x: torch.Tensor, cot: torch.Tensor | None = None):
    """The same computation on absolute values: an upper bound for every partial sum (see the module doc).
    Returns the forward magnitude, and with ``cot`` the magnitudes of the gradients (x, A, B)."""
    a = copy.deepcopy(adapter)
    with torch.no_grad():
        for p in a.parameters():
            p.abs_()
    a.scaling = abs(a.scaling)
    xa = x.double().abs().requires_grad_(True)
    out = a(xa)
    if cot is None:
        return float(out.abs().max()) if out.numel() else 1.0
    a.lora_A.requires_grad_(True)
    a.lora_B.requires_grad_(True)
    (out * cot.double().abs()).sum().backward()
    return float(out.max()), float(xa.grad.max()), float(a.lora_A.grad.max()), float(a.lora_B.grad.max())


def expected_names(s: dict) -> set[str]:
    return {"base.weight", "lora_A", "lora_B"} | ({"base.bias"} if s["bias"] else set())


@points(2)
@pytest.mark.exercise("lora_linear")
@graded(max_examples=12)
@given(s=layer_shapes, seed=seeds)
def test_lora_linear_parameters(student, s, seed):
    """parameters base.weight/base.bias (frozen, unchanged), lora_A (r x in) and lora_B (out x r, zeros)
    trainable, float32 like the base; |lora_A| <= 1/sqrt(in_features)"""
    adapter = reference_pair(s, seed)
    base = remote_base(student, s, adapter)
    layer = module_handle(student.LoRALinear(base, s["r"], s["alpha"]), "LoRALinear(base, r, alpha)")
    info = describe(student, layer, "LoRALinear(...)")
    if set(info) != expected_names(s):
        raise AssertionError(f"LoRALinear(nn.Linear({s['in']}, {s['out']}, bias={s['bias']}), r={s['r']}) has the "
                             f"parameters {sorted(info)}; expected exactly {sorted(expected_names(s))} (keep the "
                             "layer as self.base, and lora_A, lora_B as nn.Parameter attributes)")
    shapes = {"base.weight": [s["out"], s["in"]], "base.bias": [s["out"]], "lora_A": [s["r"], s["in"]],
              "lora_B": [s["out"], s["r"]]}
    for name, (shape, dtype, _, trainable) in info.items():
        if shape != shapes[name]:
            raise AssertionError(f"{name} has shape {tuple(shape)}, expected {tuple(shapes[name])}")
        if dtype != "float32":
            raise AssertionError(f"{name} has dtype {dtype}; the base layer is float32 (use its dtype)")
        if trainable != name.startswith("lora_"):
            raise AssertionError(f"{name} has requires_grad={trainable}: only lora_A and lora_B are trained, the "
                                 "base layer is frozen")
    values = student.part("lora_parameters", layer)
    if values is None:
        raise AssertionError("LoRALinear(...) is not an nn.Module")
    if not torch.equal(values["lora_B"], torch.zeros(s["out"], s["r"])):
        raise AssertionError("lora_B must start as zeros, so the adapter starts as the base layer exactly")
    bound = 1 / math.sqrt(s["in"])
    if values["lora_A"].abs().max() > bound * (1 + 1e-6):
        raise AssertionError(f"lora_A has values up to {float(values['lora_A'].abs().max()):.3g}, beyond the "
                             f"Kaiming-uniform bound 1/sqrt(in_features) = {bound:.3g}")
    for name in ("base.weight", "base.bias"):
        if name in values and not torch.equal(values[name], as_float(adapter)[name]):
            raise AssertionError(f"{name} changed: LoRALinear must keep the base layer's weights as they are")


@points(1)
@pytest.mark.exercise("lora_linear")
def test_lora_linear_init_like_peft(student):
    """lora_A is Kaiming-uniform like PEFT: uniform on [-1/sqrt(in), 1/sqrt(in)] (range, mean and spread
    of r * in values, for in = 256, r = 8 and in = 48, r = 40)"""
    for in_features, r in ((256, 8), (48, 40)):
        check_kaiming_uniform(student, in_features, r)


def check_kaiming_uniform(student, in_features: int, r: int) -> None:
    base = student.part("lora_linear_layer", in_features, 5, True)
    layer = module_handle(student.LoRALinear(base, r, 16.0), f"LoRALinear(nn.Linear({in_features}, 5), r={r})")
    a = student.part("lora_parameters", layer).get("lora_A")
    if a is None or tuple(a.shape) != (r, in_features):
        raise AssertionError(f"lora_A should be a parameter of shape ({r}, {in_features})")
    bound = 1 / math.sqrt(in_features)
    top, mean, std = float(a.abs().max()), float(a.double().mean()), float(a.double().std())
    want_std = bound / math.sqrt(3)  # the standard deviation of U(-b, b)
    if top > bound * (1 + 1e-6) or top < 0.9 * bound:
        raise AssertionError(f"lora_A ranges up to {top:.3g}; U(-1/sqrt(in), 1/sqrt(in)) reaches {bound:.3g} "
                             "(nn.init.kaiming_uniform_(A, a=math.sqrt(5)), as PEFT and nn.Linear do)")
    if abs(mean) > 0.1 * bound or abs(std - want_std) > 0.1 * want_std:
        raise AssertionError(f"lora_A has mean {mean:.3g} and standard deviation {std:.3g}; uniform values on "
                             f"[-{bound:.3g}, {bound:.3g}] have mean 0 and standard deviation {want_std:.3g}")


@points(1)
@pytest.mark.exercise("lora_linear")
@graded(max_examples=12)
@given(s=layer_shapes, lead=lead_dims, seed=seeds)
def test_lora_linear_starts_as_base(student, s, lead, seed):
    """a new LoRALinear (dropout 0) gives the base layer's output (tolerance f32_tol(|x| |W|))"""
    adapter = reference_pair(s, seed)
    layer = module_handle(student.LoRALinear(remote_base(student, s, adapter), s["r"], s["alpha"]), "LoRALinear(...)")
    x = randn(tuple(lead) + (s["in"],), seed + 2)
    with torch.no_grad():
        want = adapter.base(x.double())
    assert_close(layer(x), want, atol=f32_tol(magnitude(adapter, x)), what="a new LoRALinear's output")


@points(3)
@pytest.mark.exercise("lora_linear")
@graded(max_examples=30)
@given(s=layer_shapes, lead=lead_dims, seed=seeds, dropout=st.sampled_from([0.0, 0.25]))
def test_lora_linear_matches_reference(student, s, lead, seed, dropout):
    """with the reference's base, A and B loaded, forward equals base(x) + (alpha/r) x A^T B^T in eval mode
    (tolerance f32_tol(the same sum of absolute values))"""
    adapter = reference_pair(s, seed, dropout)
    layer = student_layer(student, s, adapter, dropout)
    x = randn(tuple(lead) + (s["in"],), seed + 2)
    with torch.no_grad():
        want = adapter(x.double())
    assert_close(layer(x), want, atol=f32_tol(magnitude(adapter, x)),
                 what=f"LoRALinear output (r={s['r']}, alpha={s['alpha']:g})")


@points(2)
@pytest.mark.exercise("lora_linear")
@graded(max_examples=20)
@given(s=layer_shapes, lead=lead_dims, seed=seeds)
def test_lora_linear_gradients(student, s, lead, seed):
    """gradients reach lora_A, lora_B and x and equal the reference's; none reaches base.weight or
    base.bias (tolerance f32_tol(sums of absolute values))"""
    adapter = reference_pair(s, seed)
    layer = student_layer(student, s, adapter)
    x = randn(tuple(lead) + (s["in"],), seed + 2)
    cot = randn(tuple(lead) + (s["out"],), seed + 3)
    got = layer.vjp(x, cotangent=cot)
    for name in ("base.weight", "base.bias"):
        if got["param_grads"].get(name) is not None:
            raise AssertionError(f"a gradient reached {name}: the base layer must be frozen (requires_grad=False)")
    xd = x.double().requires_grad_(True)
    (adapter(xd) * cot.double()).sum().backward()
    _, mx, ma, mb = magnitude(adapter, x, cot)
    for name, want, scale in (("lora_A", adapter.lora_A.grad, ma), ("lora_B", adapter.lora_B.grad, mb)):
        grad = got["param_grads"].get(name)
        if grad is None:
            raise AssertionError(f"no gradient reached {name}: is it an nn.Parameter used in forward?")
        assert_close(grad, want, atol=f32_tol(scale), what=f"gradient of {name}")
    if got["arg_grads"][0] is None:
        raise AssertionError("no gradient reached the input x: is the output detached from it?")
    assert_close(got["arg_grads"][0], xd.grad, atol=f32_tol(mx), what="gradient with respect to x")


@points(2)
@pytest.mark.exercise("lora_linear")
@graded(max_examples=10)
@given(s=layer_shapes, seed=seeds)
def test_lora_linear_dropout(student, s, seed):
    """in training mode dropout acts on the adapter's input only: with one non-zero input feature per row,
    each row is base(x) (feature dropped) or base(x) + the update scaled by 1/(1-p) (kept); in eval mode
    there is no dropout (tolerance f32_tol(sums of absolute values))"""
    p, rows = 0.5, 24
    adapter = reference_pair(s, seed, p)
    layer = student_layer(student, s, adapter, p)
    layer.method("train")()
    which = torch.randint(0, s["in"], (rows,), generator=gen(seed + 4))
    x = torch.zeros(rows, s["in"])
    x[torch.arange(rows), which] = randn((rows,), seed + 5).abs() + 0.5  # clearly non-zero
    out = layer(x)
    xd = x.double()
    with torch.no_grad():
        base = adapter.base(xd)
        update = (xd @ adapter.lora_A.T @ adapter.lora_B.T) * adapter.scaling / (1 - p)
    expect_tensor(out, "LoRALinear(x) in training mode", shape=base.shape, floating=True)
    tol = f32_tol(magnitude(adapter, x) / (1 - p))
    dropped = (out.double() - base).abs().amax(-1) <= tol
    kept = (out.double() - base - update).abs().amax(-1) <= tol
    moved = update.abs().amax(-1) > 4 * tol  # rows where dropping the feature is visible at all
    bad = ~(dropped | kept)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise AssertionError(f"in training mode, row {i} of LoRALinear(x) is neither base(x) nor base(x) + the update / "
                             "(1 - p): dropout must act on the adapter's input x only (dropout(x) @ A.T @ B.T), never "
                             "on the base path, and the kept values are scaled by 1 / (1 - p)")
    if moved.sum() >= 8 and (bool((kept & moved).all()) or bool((dropped & moved).all())):
        raise AssertionError(f"in training mode with dropout={p}, all {int(moved.sum())} rows kept (or all dropped) "
                             "their input feature: is dropout applied in training mode?")
    layer.method("eval")()
    with torch.no_grad():
        want = adapter.eval()(xd)
    assert_close(layer(x), want, atol=f32_tol(magnitude(adapter, x)), what="LoRALinear(x) in eval mode (no dropout)")


@points(1)
@pytest.mark.exercise("lora_linear")
def test_lora_linear_rejects_bad_arguments(student):
    """r = 0 or r = -2 raises ValueError, a base that is not an nn.Linear (a LayerNorm) raises TypeError
    (either of the two is accepted for each); LoRALinear(nn.Linear(4, 3), 2, 4.0) must be accepted"""
    module_handle(student.LoRALinear(student.part("lora_linear_layer", 4, 3, True), 2, 4.0),
                  "LoRALinear(nn.Linear(4, 3), r=2, alpha=4.0)")
    for r in (0, -2):
        expect_error(lambda: student.LoRALinear(student.part("lora_linear_layer", 4, 3, True), r, 4.0),
                     f"LoRALinear(nn.Linear(4, 3), r={r}, alpha=4.0)")
    expect_error(lambda: student.LoRALinear(student.part("LayerNorm", 4), 2, 4.0),
                 "LoRALinear(LayerNorm(4), r=2, alpha=4.0)")


def merged_of(student, layer) -> Remote:
    merged = module_handle(layer.method("merge")(), "LoRALinear.merge()")
    kind = student.part("lora_modules", merged)
    if kind is None or not kind[""][1]:
        got = kind[""][0] if kind else "an object that is not an nn.Module"
        raise AssertionError(f"merge() should return an nn.Linear, got {got}")
    return merged


@points(2)
@pytest.mark.exercise("lora_linear")
@graded(max_examples=15)
@given(s=layer_shapes, lead=lead_dims, seed=seeds)
def test_lora_linear_merge(student, s, lead, seed):
    """merge() returns an nn.Linear with weight W + (alpha/r) B A and the base's bias, and the same output
    as the adapter (tolerance f32_tol(sums of absolute values))"""
    adapter = reference_pair(s, seed)
    layer = student_layer(student, s, adapter)
    merged = merged_of(student, layer)
    values = student.part("lora_parameters", merged)
    want = {"weight"} | ({"bias"} if s["bias"] else set())
    if set(values) != want:
        raise AssertionError(f"the merged nn.Linear has the parameters {sorted(values)}, expected {sorted(want)}")
    with torch.no_grad():
        w = adapter.base.weight + adapter.lora_B @ adapter.lora_A * adapter.scaling
        w_scale = adapter.base.weight.abs() + adapter.lora_B.abs() @ adapter.lora_A.abs() * abs(adapter.scaling)
    assert_close(values["weight"], w, atol=f32_tol(float(w_scale.max())), what="merged weight")
    if s["bias"]:
        assert_close(values["bias"], adapter.base.bias, atol=0.0, what="merged bias")
    x = randn(tuple(lead) + (s["in"],), seed + 2)
    with torch.no_grad():
        out = adapter(x.double())
    assert_close(merged(x), out, atol=f32_tol(magnitude(adapter, x)), what="the merged layer's output")


@points(2)
@pytest.mark.exercise("lora_linear")
@graded(max_examples=10)
@given(s=layer_shapes, seed=seeds)
def test_lora_linear_merge_leaves_the_adapter_intact(student, s, seed):
    """after merge() the adapter's parameters and output are unchanged, also after the merged layer's
    weights are zeroed in place (it shares no tensor with the adapter)"""
    adapter = reference_pair(s, seed)
    layer = student_layer(student, s, adapter)
    x = randn((3, s["in"]), seed + 2)
    before = student.part("lora_parameters", layer)
    out_before = layer(x)
    merged = merged_of(student, layer)
    for stage in ("after merge()", "after zeroing the merged layer's weights in place"):
        if stage.startswith("after zeroing"):
            student.part("lora_zero_", merged)
        now = student.part("lora_parameters", layer)
        for name, value in before.items():
            if name not in now or not torch.equal(now[name], value):
                raise AssertionError(f"{name} of the adapter changed {stage}: merge() must build a new nn.Linear "
                                     "with new tensors and leave the adapter (and its base layer) as it was")
        assert_close(layer(x), out_before, atol=0.0, what=f"the adapter's output {stage}")


# -------------------------------------------------------------------------------------------- apply_lora
gpt_cfgs = st.fixed_dictionaries({"vocab_size": st.integers(2, 16), "context_length": st.integers(2, 8),
                                  "n_heads": st.integers(1, 2), "head_dim": st.integers(1, 4),
                                  "n_layers": st.integers(1, 2), "qkv_bias": st.booleans()})
TARGETS = ["W_query", "W_key", "W_value", "out_proj", "layers.0", "layers.2", "out_head", "att.W_query",
           "ff.layers.2", "trf_blocks.0.att.W_value"]
target_lists = st.lists(st.sampled_from(TARGETS), min_size=1, max_size=3, unique=True)


def config(c: dict) -> dict:
    c = dict(c)
    c["emb_dim"] = c["n_heads"] * c.pop("head_dim")
    return c | {"drop_rate": 0.0}


def reference_gpt(cfg: dict, seed: int):
    torch.manual_seed(seed)
    return gref.GPTModel(cfg).double().eval()


def adapted_reference(base, r, alpha, targets, seed):
    """A float64 copy of ``base`` with LoRA on ``targets`` and random non-zero B (as after training)."""
    model = ref.apply_lora(copy.deepcopy(base), r, alpha, targets)
    g = gen(seed + 11)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_(0.0, 0.5, generator=g)
    return model


def kit_gpt(student, cfg: dict, reference) -> Remote:
    model = student.part("GPTModel", cfg)
    model.load_parameters(as_float(reference))
    model.method("eval")()
    return model


def tokens(cfg: dict, seed: int) -> torch.Tensor:
    return torch.randint(0, cfg["vocab_size"], (2, cfg["context_length"]), generator=gen(seed + 7))


def gpt_tol(logits: torch.Tensor) -> float:
    return f32_tol(200 * float(logits.abs().max()))


def check_targets(student, model, reference, what: str) -> None:
    """The adapted layers, the trainable parameters and all parameter names equal the reference's."""
    modules = student.part("lora_modules", model)
    if modules is None:
        raise AssertionError(f"{what} is not an nn.Module")
    info = describe(student, model, what)
    got = {n for n, (_, _, has_lora) in modules.items() if has_lora}
    trainable = {n for n, v in info.items() if v[3]}
    want = {n for n, m in reference.named_modules() if isinstance(m, ref.LoRALinear)}
    if got != want:
        raise AssertionError(f"{what} adapted {sorted(got) or 'no layer'}; expected exactly {sorted(want)}")
    want_trainable = {n for n, p in reference.named_parameters() if p.requires_grad}
    if trainable != want_trainable:
        extra, missing = sorted(trainable - want_trainable), sorted(want_trainable - trainable)
        raise AssertionError(f"{what}: the trainable parameters should be exactly the adapters' lora_A and lora_B; "
                             f"{len(extra)} others are trainable (first: {extra[:3]}), {len(missing)} adapters' "
                             f"parameters are frozen (first: {missing[:3]})")
    want_names = {n for n, _ in reference.named_parameters()}
    if set(info) != want_names:
        extra, missing = sorted(set(info) - want_names), sorted(want_names - set(info))
        raise AssertionError(f"{what} has unexpected parameters {extra[:4]} and lacks {missing[:4]}")


@points(3)
@pytest.mark.exercise("apply_lora")
@graded(max_examples=20)
@given(c=gpt_cfgs, targets=target_lists, r=st.integers(1, 4), alpha=st.sampled_from(ALPHAS), seed=seeds)
def test_apply_lora_adapts_exactly_the_targets(student, c, targets, r, alpha, seed):
    """on the kit's GPT model: exactly the layers whose names end with a target (after a dot) become
    LoRALinear, and only their lora_A and lora_B are trainable (trainable-parameter count as the reference)"""
    cfg = config(c)
    base = reference_gpt(cfg, seed % 10_000)
    reference = ref.apply_lora(copy.deepcopy(base), r, alpha, targets)
    model = module_handle(student.apply_lora.using("LoRALinear")(kit_gpt(student, cfg, base), r, alpha, targets),
                          "apply_lora(model, ...)")
    check_targets(student, model, reference, f"apply_lora(model, r={r}, alpha={alpha:g}, {targets})")


@points(2)
@pytest.mark.exercise("apply_lora")
@graded(max_examples=15)
@given(c=gpt_cfgs, targets=target_lists, r=st.integers(1, 4), alpha=st.sampled_from(ALPHAS), seed=seeds)
def test_apply_lora_outputs(student, c, targets, r, alpha, seed):
    """the adapted model first gives the base model's logits, then, with the reference adapters' weights
    loaded, the reference's (tolerance f32_tol(200 * max|logits|))"""
    cfg = config(c)
    base = reference_gpt(cfg, seed % 10_000)
    reference = adapted_reference(base, r, alpha, targets, seed)
    model = module_handle(student.apply_lora.using("LoRALinear")(kit_gpt(student, cfg, base), r, alpha, targets),
                          "apply_lora(model, ...)")
    idx = tokens(cfg, seed)
    with torch.no_grad():
        want_base, want = base(idx), reference(idx)
    assert_close(model(idx), want_base, atol=gpt_tol(want_base), what="logits right after apply_lora (B = 0)")
    model.load_parameters(as_float(reference))
    model.method("eval")()
    assert_close(model(idx), want, atol=gpt_tol(want), what="logits with the adapters' weights loaded")


@points(1)
@pytest.mark.exercise("apply_lora")
@graded(max_examples=6)
@given(c=gpt_cfgs, targets=target_lists, seed=seeds)
def test_apply_lora_optimizer_steps_change_only_adapters(student, c, targets, seed):
    """three AdamW steps (weight decay on) over all of model.parameters() change every adapter weight and
    nothing else"""
    cfg = config(c)
    base = reference_gpt(cfg, seed % 10_000)
    reference = adapted_reference(base, 2, 4.0, targets, seed)
    model = module_handle(student.apply_lora.using("LoRALinear")(kit_gpt(student, cfg, base), 2, 4.0, targets),
                          "apply_lora(model, ...)")
    model.load_parameters(as_float(reference))
    before = student.part("lora_parameters", model)
    idx = tokens(cfg, seed)
    if before is None or student.part("lora_train_steps", model, idx, tokens(cfg, seed + 1)) is None:
        raise AssertionError("the model apply_lora returned could not be trained (forward or backward failed)")
    after = student.part("lora_parameters", model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    adapters = {n for n, p in reference.named_parameters() if p.requires_grad}
    if changed != adapters:
        raise AssertionError(f"training changed {sorted(changed - adapters)[:3] or 'no frozen weight'} and left "
                             f"{sorted(adapters - changed)[:3] or 'no adapter'} unchanged: only the adapters may "
                             "train, and every adapter must")


@points(1)
@pytest.mark.exercise("apply_lora")
@graded(max_examples=8)
@given(targets=st.lists(st.sampled_from(["layers.0", "layers.2", "query", "heads.1", "heads.0", "head", "encoder.layers.2"]),
                        min_size=1, max_size=3, unique=True),
       tied=st.booleans(), seed=st.integers(0, 1000))
def test_apply_lora_on_another_model(student, targets, tied, seed):
    """on a model that is not a GPT (nested ModuleDict / Sequential / ModuleList, an Embedding, a tied head):
    the same rule and the same trainable parameters as the reference"""
    torch.manual_seed(seed)
    reference = ref.apply_lora(ToyModel(tied=tied), 3, 6.0, targets)
    model = student.part("lora_toy_model", tied=tied, seed=seed)
    model = module_handle(student.apply_lora.using("LoRALinear")(model, 3, 6.0, targets), "apply_lora(model, ...)")
    check_targets(student, model, reference, f"apply_lora(toy model, 3, 6.0, {targets})")


@points(1)
@pytest.mark.exercise("apply_lora")
def test_apply_lora_matches_whole_names(student):
    """a target matches a module whose name equals it or ends with "." + target: "att.W_query" adapts every
    W_query and "trf_blocks.1.ff.layers.0" one layer, while "query" and "proj" match nothing (ValueError,
    TypeError accepted)"""
    cfg = {"vocab_size": 9, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 2, "drop_rate": 0.0,
           "qkv_bias": False}
    base = reference_gpt(cfg, 0)
    call = student.apply_lora.using("LoRALinear")
    for targets in (["att.W_query"], ["trf_blocks.1.ff.layers.0"]):
        what = f"apply_lora(model, 2, 4.0, {targets})"
        model = module_handle(call(kit_gpt(student, cfg, base), 2, 4.0, targets), what)
        check_targets(student, model, ref.apply_lora(copy.deepcopy(base), 2, 4.0, targets), what)
    for targets in (["query"], ["proj"]):
        expect_error(lambda: call(kit_gpt(student, cfg, base), 2, 4.0, targets),
                     f"apply_lora(model, 2, 4.0, {targets}) (no layer is called {targets[0]!r} or '*.{targets[0]}')")


@points(1)
@pytest.mark.exercise("apply_lora")
def test_apply_lora_rejects_bad_targets(student):
    """a target that matches nothing ("W_qery", or one of two) raises ValueError, one naming a module that
    is not an nn.Linear ("norm1", "trf_blocks.0.att") raises TypeError (either is accepted for each); a
    valid list must be accepted"""
    cfg = {"vocab_size": 9, "context_length": 4, "emb_dim": 4, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
           "qkv_bias": False}
    base = reference_gpt(cfg, 1)
    call = student.apply_lora.using("LoRALinear")
    module_handle(call(kit_gpt(student, cfg, base), 2, 4.0, ["W_key", "out_head"]),
                  "apply_lora(model, 2, 4.0, ['W_key', 'out_head'])")
    for targets in (["W_qery"], ["norm1"], ["W_query", "no_such_layer"], ["trf_blocks.0.att"]):
        expect_error(lambda: call(kit_gpt(student, cfg, base), 2, 4.0, targets), f"apply_lora(model, 2, 4.0, {targets})")


# -------------------------------------------------------------------------------------------- merge_lora
def kit_adapted(student, cfg, base, reference, r, alpha, targets) -> Remote:
    """The kit's GPT, adapted by the kit's apply_lora, holding the reference adapters' weights."""
    model = kit_gpt(student, cfg, base)
    student.part("apply_lora", model, r, alpha, targets)
    model.load_parameters(as_float(reference))
    model.method("eval")()
    return model


@points(2)
@pytest.mark.exercise("merge_lora")
@graded(max_examples=12)
@given(c=gpt_cfgs, targets=target_lists, r=st.integers(1, 4), alpha=st.sampled_from(ALPHAS), seed=seeds)
def test_merge_lora_replaces_every_adapter(student, c, targets, r, alpha, seed):
    """no adapter is left: the model has the base model's parameter names again, each adapted weight is
    W + (alpha/r) B A (tolerance f32_tol(|W| + |alpha/r| |B| |A|)) and every other weight is unchanged"""
    cfg = config(c)
    base = reference_gpt(cfg, seed % 10_000)
    reference = adapted_reference(base, r, alpha, targets, seed)
    model = kit_adapted(student, cfg, base, reference, r, alpha, targets)
    merged = module_handle(student.merge_lora.using("LoRALinear")(model), "merge_lora(model)")
    modules = student.part("lora_modules", merged)
    if modules is None:
        raise AssertionError("merge_lora(model) should return the model")
    left = sorted(n for n, (_, _, has_lora) in modules.items() if has_lora)
    if left:
        raise AssertionError(f"merge_lora left {len(left)} adapters in the model (first: {left[0]}): replace every "
                             "LoRALinear, however deep in the model it sits")
    adapted = [n for n, m in reference.named_modules() if isinstance(m, ref.LoRALinear)]
    not_linear = [n for n in adapted if n not in modules or not modules[n][1]]
    if not_linear:
        raise AssertionError(f"{not_linear[0]} should be an nn.Linear after merge_lora")
    values = student.part("lora_parameters", merged)
    want = dict(base.named_parameters())
    if set(values) != set(want):
        raise AssertionError(f"after merge_lora the parameters should be named as in the base model; unexpected "
                             f"{sorted(set(values) - set(want))[:3]}, missing {sorted(set(want) - set(values))[:3]}")
    with torch.no_grad():
        for name in adapted:
            layer = reference.get_submodule(name)
            want[f"{name}.weight"] = layer.base.weight + layer.lora_B @ layer.lora_A * layer.scaling
    for name, value in values.items():
        if name.rpartition(".")[0] in adapted and name.endswith("weight"):
            layer = reference.get_submodule(name.rpartition(".")[0])
            scale = (layer.base.weight.abs() + layer.lora_B.abs() @ layer.lora_A.abs() * abs(layer.scaling)).max()
            assert_close(value, want[name], atol=f32_tol(float(scale)), what=f"merged {name}")
        else:
            assert_close(value, want[name].float(), atol=0.0, what=name)


@points(2)
@pytest.mark.exercise("merge_lora")
@graded(max_examples=12)
@given(c=gpt_cfgs, targets=target_lists, r=st.integers(1, 4), alpha=st.sampled_from(ALPHAS), seed=seeds)
def test_merge_lora_same_outputs(student, c, targets, r, alpha, seed):
    """the merged model, with no adapter left, gives the adapted model's logits (tolerance
    f32_tol(200 * max|logits|))"""
    cfg = config(c)
    base = reference_gpt(cfg, seed % 10_000)
    reference = adapted_reference(base, r, alpha, targets, seed)
    model = kit_adapted(student, cfg, base, reference, r, alpha, targets)
    merged = module_handle(student.merge_lora.using("LoRALinear")(model), "merge_lora(model)")
    modules = student.part("lora_modules", merged) or {}
    if any(has_lora for _, _, has_lora in modules.values()):
        raise AssertionError("merge_lora left adapters in the model (see the other merge_lora test)")
    idx = tokens(cfg, seed)
    with torch.no_grad():
        want = reference(idx)
    assert_close(merged(idx), want, atol=gpt_tol(want), what="logits of the merged model")


# ---------------------------------------------------------------------------- count_trainable_parameters
def expect_count(student, model, want: int, what: str) -> None:
    got = student.count_trainable_parameters(model)
    if isinstance(got, bool) or not isinstance(got, int):
        raise AssertionError(f"count_trainable_parameters should return a Python int, got {type(got).__name__}")
    if got != want:
        raise AssertionError(f"count_trainable_parameters({what}) returned {got:,}; the right count is different")


@points(2)
@pytest.mark.exercise("count_trainable_parameters")
@graded(max_examples=12)
@given(c=gpt_cfgs, seed=seeds, adapt=st.booleans(), data=st.data())
def test_count_trainable_parameters(student, c, seed, adapt, data):
    """the number of elements of the parameters with requires_grad=True, on the kit's GPT with some
    parameters frozen, or after the kit's apply_lora (exact)"""
    cfg = config(c)
    base = reference_gpt(cfg, seed % 10_000)
    model = kit_gpt(student, cfg, base)
    if adapt:
        targets = data.draw(target_lists, label="targets")
        student.part("apply_lora", model, 2, 4.0, targets)
        want = ref.count_trainable_parameters(ref.apply_lora(copy.deepcopy(base), 2, 4.0, targets))
        what = f"GPT with LoRA on {targets}"
    else:
        names = [n for n, _ in base.named_parameters()]
        frozen = data.draw(st.lists(st.sampled_from(names), unique=True), label="frozen")
        student.part("lora_freeze", model, frozen)
        want = sum(p.numel() for n, p in base.named_parameters() if n not in frozen)
        what = f"GPT with {len(frozen)} of {len(names)} parameters frozen"
    expect_count(student, model, want, what)


@points(1)
@pytest.mark.exercise("count_trainable_parameters")
def test_count_trainable_parameters_shared_once(student):
    """a parameter shared by two modules (a tied embedding and head) counts once, as model.parameters()
    yields it (exact)"""
    for tied in (False, True):
        model = student.part("lora_toy_model", tied=tied, seed=3)
        expect_count(student, model, ref.count_trainable_parameters(ToyModel(tied=tied)),
                     "a model whose head shares the embedding matrix" if tied else "a small model")
