"""Week 6's trusted stand-ins (LoRA).

* ``LoRALinear``, ``apply_lora``, ``merge_lora``: swapped in for the student's names while one call runs
  (``student.apply_lora.using("LoRALinear")``), so ``apply_lora`` and ``merge_lora`` are graded on a
  correct adapter whatever the student's ``LoRALinear`` does, and ``merge_lora`` on a model adapted by
  a correct ``apply_lora``.
* The helpers the hidden tests call in the worker are in ``lora_tools.py``.

Written with PyTorch built-ins (``F.linear``, ``Tensor.uniform_``, ``copy.deepcopy``), never by importing
``reference``; ``tests/test_reference_lora.py`` proves each stand-in equals ``reference/lora.py``. Only
imported for weeks whose ``Assignment.parts`` lists "lora".
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SOLVES = ("w06_lora",)  # a snapshot bundle never carries this module (autograder/export/weeks.py)


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


PARTS = {"LoRALinear": LoRALinear, "apply_lora": apply_lora, "merge_lora": merge_lora}
