# BUG: merge() adds the update into the adapter's own base weight, in place, and returns that base layer:
# the merged layer is right, but the adapter (whose forward uses the base) has changed.
# Must lose points: LoRALinear's merge-leaves-the-adapter-intact test (2). Must keep full marks: the merge
# test itself (the returned layer is right), and everything else.
import math

import torch
import torch.nn as nn


def count_trainable_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError("base must be an nn.Linear")
        if not isinstance(r, int) or r <= 0:
            raise ValueError("r must be a positive int")
        self.base = base
        self.base.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def merge(self):
        with torch.no_grad():
            self.base.weight += self.scaling * self.lora_B @ self.lora_A  # BUG: changes the adapter itself
        return self.base


def apply_lora(model, r, alpha, target_modules, dropout=0.0):
    targets = list(target_modules)
    chosen, used = [], set()
    for name, module in model.named_modules():
        hit = {t for t in targets if name == t or name.endswith("." + t)}
        if hit:
            if not isinstance(module, nn.Linear):
                raise TypeError(f"{name} is not an nn.Linear")
            chosen.append(name)
            used |= hit
    if not targets or used != set(targets):
        raise ValueError("a target matches nothing")
    model.requires_grad_(False)
    for name in chosen:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, LoRALinear(model.get_submodule(name), r, alpha, dropout))
    return model


def merge_lora(model):
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module.merge())
    return model
