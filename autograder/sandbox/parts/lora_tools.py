"""Week 6's test tools: helpers that build objects in the worker (``lora_linear_layer``,
``lora_toy_model``), read facts off a module and return plain data (``lora_describe``, ``lora_modules``,
``lora_parameters``), or act on one (``lora_train_steps``, ``lora_zero_``, ``lora_freeze``). Modules never
cross the wire, so this is how the grader learns which parameters are trainable or which layers were
replaced. None of them implements a graded exercise (``SOLVES`` is empty), so a public snapshot bundle may
carry this module (``autograder/export/weeks.py``). Their answers are as trustworthy as the worker itself;
the grader checks numbers against its own reference wherever it can.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import warm_up_optimizers

SOLVES: tuple[str, ...] = ()

warm_up_optimizers()  # optimizers are built in the worker


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
    "lora_linear_layer": lora_linear_layer, "lora_toy_model": lora_toy_model, "lora_describe": lora_describe,
    "lora_modules": lora_modules, "lora_parameters": lora_parameters, "lora_train_steps": lora_train_steps,
    "lora_zero_": lora_zero_, "lora_freeze": lora_freeze,
}
