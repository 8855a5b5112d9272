"""Week 6's trusted stand-ins (LoRA) and the small helpers its hidden tests run inside the worker.

* ``LoRALinear``, ``apply_lora``, ``merge_lora``: swapped in for the student's names while one call runs
  (``student.apply_lora.using("LoRALinear")``), so ``apply_lora`` and ``merge_lora`` are graded on a
  correct adapter whatever the student's ``LoRALinear`` does, and ``merge_lora`` on a model adapted by
  a correct ``apply_lora``.
* Helpers that build objects (``lora_linear_layer``, ``lora_toy_model``) or read facts off a module
  in the worker and return plain data (``lora_describe``, ``lora_modules``, ``lora_parameters``), and
  two that act on one (``lora_train_steps``, ``lora_zero_``, ``lora_freeze``). Modules never cross the
  wire, so this is how the grader learns which parameters are trainable or which layers were replaced.

Written with PyTorch built-ins (``F.linear``, ``Tensor.uniform_``, ``copy.deepcopy``), never by importing
``reference``; ``tests/test_reference_lora.py`` proves each stand-in equals ``reference/lora.py``. Only
imported for weeks whose ``Assignment.parts`` lists "lora". Like every fact gathered inside the worker,
the helpers' answers are as trustworthy as the worker itself; the grader checks numbers against its own
reference wherever it can.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import warm_up_optimizers

warm_up_optimizers()  # optimizers are built in the worker


class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, not a {type(base).__name__}")
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"r must be a positive int, got {r!r}")
        base.weight.requires_grad = False
        if base.bias is not None:
            base.bias.requires_grad = False
        self.base, self.r, self.alpha, self.scaling = base, r, alpha, alpha / r
        like = {"dtype": base.weight.dtype, "device": base.weight.device}
        bound = 1.0 / math.sqrt(base.in_features)  # kaiming_uniform_(a=sqrt(5)) on an (r, in) matrix
        with torch.no_grad():
            self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **like).uniform_(-bound, bound))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **like))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        update = F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)
        return self.base(x) + self.scaling * update

    def merge(self):
        merged = copy.deepcopy(self.base)
        with torch.no_grad():
            merged.weight.addmm_(self.lora_B, self.lora_A, alpha=self.scaling)
        return merged


def _targets(model, target_modules):
    targets = list(target_modules)
    if not targets:
        raise ValueError("target_modules is empty")
    chosen, used = [], set()
    for name, module in model.named_modules():
        hit = {t for t in targets if name and (name == t or name.endswith("." + t))}
        if hit:
            if not isinstance(module, nn.Linear):
                raise TypeError(f"{name} is a {type(module).__name__}, not an nn.Linear")
            chosen.append(name)
            used |= hit
    unused = [t for t in targets if t not in used]
    if unused:
        raise ValueError(f"no module matches {unused}")
    return chosen


def _set(model, name, module):
    *path, last = name.split(".")
    parent = model
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, last, module)


def apply_lora(model, r, alpha, target_modules, dropout=0.0):
    chosen = _targets(model, target_modules)
    for p in model.parameters():
        p.requires_grad = False
    for name in chosen:
        _set(model, name, LoRALinear(model.get_submodule(name), r, alpha, dropout))
    return model


def merge_lora(model):
    adapters = [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name, module in adapters:
        _set(model, name, module.merge())
    return model


# -- helpers the hidden tests call with student.part(...) ---------------------------------------------
def lora_linear_layer(in_features, out_features, bias=True, dtype=None, device=None):
    """A fresh ``nn.Linear`` in the worker (the grader loads its weights with ``load_parameters``)."""
    dtype = {"float32": torch.float32, "float64": torch.float64}[dtype] if isinstance(dtype, str) else dtype
    return nn.Linear(in_features, out_features, bias=bias, dtype=dtype, device=device)


class ToyModel(nn.Module):
    """Not a GPT: nested containers, a LayerNorm, an Embedding and a name ending in ``query`` (like
    ``W_query``), so ``apply_lora`` must follow names, not GPT's layout. ``tied``: the head reuses the
    embedding matrix (one parameter, two modules)."""

    def __init__(self, d=6, vocab=7, tied=False):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.encoder = nn.ModuleDict({
            "layers": nn.Sequential(nn.Linear(d, 2 * d), nn.Tanh(), nn.Linear(2 * d, d)),
            "norm": nn.LayerNorm(d),
        })
        self.query = nn.Linear(d, d, bias=False)
        self.heads = nn.ModuleList([nn.Linear(d, d), nn.Linear(d, d, bias=False)])
        self.head = nn.Linear(d, vocab, bias=False)
        if tied:
            self.head.weight = self.embed.weight

    def forward(self, idx):
        h = self.embed(idx)
        h = self.encoder["norm"](h + self.encoder["layers"](h))
        h = h + self.query(h)
        for layer in self.heads:
            h = h + torch.tanh(layer(h))
        return self.head(h)


def lora_toy_model(d=6, vocab=7, tied=False, seed=0):
    torch.manual_seed(seed)
    return ToyModel(d, vocab, tied)


def _facts(helper):
    """Helpers that read a student's object answer None when it is not a module or cannot be read, so
    the test reports the student's mistake instead of a failure of the kit."""

    def read(module, *args):
        if not isinstance(module, nn.Module):
            return None
        try:
            return helper(module, *args)
        except Exception:  # noqa: BLE001  (a broken student module)
            return None

    read.__name__ = helper.__name__
    return read


@_facts
def lora_describe(module):
    """{parameter name: [shape, dtype, device type, requires_grad]} (as named_parameters yields them)."""
    return {n: [list(p.shape), str(p.dtype).replace("torch.", ""), p.device.type, bool(p.requires_grad)]
            for n, p in module.named_parameters()}


@_facts
def lora_modules(module):
    """{qualified name: [class name, is an nn.Linear, has lora_A and lora_B parameters of its own]}."""
    out = {}
    for name, m in module.named_modules():
        own = dict(m.named_parameters(recurse=False))
        out[name] = [type(m).__name__, isinstance(m, nn.Linear), "lora_A" in own and "lora_B" in own]
    return out


@_facts
def lora_parameters(module):
    """{parameter name: a detached copy of its value}."""
    return {n: p.detach().clone() for n, p in module.named_parameters()}


@_facts
def lora_train_steps(model, idx, targets, steps=3, lr=0.01):
    """A few AdamW steps (weight decay on) over *all* of ``model.parameters()`` on next-token cross
    entropy: frozen parameters get no gradient, so AdamW must leave them exactly as they were. Returns
    the losses (None if the model cannot be trained)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    losses = []
    for _ in range(steps):
        logits = model(idx)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def lora_zero_(module):
    """Zero every parameter of ``module`` in place (does anything else share its tensors?)."""
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()


def lora_freeze(module, frozen):
    """requires_grad = False for the parameters named in ``frozen``, True for all others."""
    for n, p in module.named_parameters():
        p.requires_grad_(n not in set(frozen))


PARTS = {
    "LoRALinear": LoRALinear, "apply_lora": apply_lora, "merge_lora": merge_lora,
    "lora_linear_layer": lora_linear_layer, "lora_toy_model": lora_toy_model, "lora_describe": lora_describe,
    "lora_modules": lora_modules, "lora_parameters": lora_parameters, "lora_train_steps": lora_train_steps,
    "lora_zero_": lora_zero_, "lora_freeze": lora_freeze,
}
