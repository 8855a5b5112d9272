"""Week 6 reference: low-rank adaptation (LoRA) of linear layers.

The trusted oracle for the LoRA week. ``tests/test_reference_lora.py`` proves it against Hugging Face
PEFT (``peft.LoraConfig`` / ``get_peft_model`` on a small model built there): the same base layer,
rank, ``lora_alpha`` and A/B weights give the same outputs, the same merged weights, and A starts from
the same Kaiming-uniform distribution.

The student contract (stated in the notebook):

* ``LoRALinear(base, r, alpha, dropout=0.0)`` wraps an ``nn.Linear``: ``base`` keeps its weights and is
  frozen; ``lora_A`` is ``(r, in_features)``, Kaiming-uniform with ``a = sqrt(5)`` (bound
  ``1 / sqrt(in_features)``, as PEFT and ``nn.Linear`` do); ``lora_B`` is ``(out_features, r)`` of zeros;
  both take the base weight's dtype and device. ``scaling = alpha / r``.
  ``forward(x) = base(x) + (dropout(x) @ lora_A.T @ lora_B.T) * scaling``: dropout acts on the adapter's
  input only. Parameter names: ``base.weight``, ``base.bias`` (if any), ``lora_A``, ``lora_B``.
* ``merge()`` returns a new ``nn.Linear`` with weight ``W + scaling * B @ A`` and a copy of the bias,
  sharing no tensor with the adapter, which is left unchanged.
* ``apply_lora(model, r, alpha, target_modules, dropout=0.0)``: a module named ``name`` is a target when
  ``name == t`` or ``name.endswith("." + t)`` for some ``t`` in ``target_modules`` (PEFT's rule for a
  list of names). Every target must be an ``nn.Linear`` (else ``TypeError``) and every ``t`` must match
  something (else ``ValueError``). All parameters of the model are frozen, each target is replaced by a
  ``LoRALinear``, and the same model object is returned.
* ``merge_lora(model)`` replaces every ``LoRALinear`` by ``merge()``'s linear; returns the model.
* ``count_trainable_parameters(model)``: elements of the parameters with ``requires_grad``, each
  parameter counted once (as ``model.parameters()`` yields them).
* ``r`` must be a positive ``int`` (``ValueError``); ``base`` must be an ``nn.Linear`` (``TypeError``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["LoRALinear", "apply_lora", "merge_lora", "count_trainable_parameters", "matches", "lora_targets",
           "rslora_scaling", "full_finetune_bytes"]


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) * dropout(x) A^T B^T`` with ``base`` frozen."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
            raise ValueError(f"the rank r must be a positive integer, got {r!r}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha = r, alpha
        self.scaling = alpha / r
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=weight.dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # U(-1/sqrt(in), 1/sqrt(in)), like PEFT
        self.dropout = nn.Dropout(dropout)

    def delta_weight(self) -> torch.Tensor:
        """The update the adapter adds to the base weight: ``scaling * B @ A`` (out x in)."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def merge(self) -> nn.Linear:
        base = self.base
        merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                           dtype=base.weight.dtype, device=base.weight.device)
        with torch.no_grad():
            merged.weight.copy_(base.weight + self.delta_weight())
            if base.bias is not None:
                merged.bias.copy_(base.bias)
        merged.requires_grad_(base.weight.requires_grad)
        return merged


def matches(name: str, target: str) -> bool:
    """PEFT's rule for a list of target names: the whole qualified name, or a suffix after a dot."""
    return name == target or name.endswith("." + target)


def lora_targets(model: nn.Module, target_modules) -> list[str]:
    """The qualified names ``apply_lora`` adapts, in ``named_modules`` order; raises like it does."""
    targets = list(target_modules)
    found = {t: 0 for t in targets}
    names = []
    for name, module in model.named_modules():
        hits = [t for t in targets if name and matches(name, t)]
        if not hits:
            continue
        if not isinstance(module, nn.Linear):
            raise TypeError(f"target {hits[0]!r} matches {name!r}, a {type(module).__name__}; LoRA adapts nn.Linear")
        for t in hits:
            found[t] += 1
        names.append(name)
    missing = [t for t, n in found.items() if n == 0]
    if missing or not targets:
        raise ValueError(f"no module of the model matches {missing or 'an empty target list'}")
    return names


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, new)


def apply_lora(model: nn.Module, r: int, alpha: float, target_modules, dropout: float = 0.0) -> nn.Module:
    names = lora_targets(model, target_modules)  # every check before the model changes
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise ValueError(f"the rank r must be a positive integer, got {r!r}")
    model.requires_grad_(False)
    for name in names:
        _replace(model, name, LoRALinear(model.get_submodule(name), r, alpha, dropout))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            _replace(model, name, module.merge())
    return model


def count_trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def rslora_scaling(alpha: float, r: int) -> float:
    """Rank-stabilised LoRA (Kalajdzievski, 2023) scales by ``alpha / sqrt(r)`` instead of ``alpha / r``."""
    return alpha / math.sqrt(r)


def full_finetune_bytes(n_params: int, bytes_per_value: int = 4) -> dict[str, int]:
    """Training memory with AdamW, activations aside: weights, gradients and two moment estimates."""
    return {"weights": n_params * bytes_per_value, "gradients": n_params * bytes_per_value,
            "adam_moments": 2 * n_params * bytes_per_value}
