# CORRECT, written differently from the instructor's solution: F.linear and einsum instead of @,
# torch.nn.init.uniform_ with the Kaiming bound written out, dropout through F.dropout, a merged layer
# made by deep-copying the base, recursive module walks instead of get_submodule, and a count that goes
# through named_parameters(). Must get full marks: 32 / 32.
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def count_trainable_parameters(model):
    total = 0
    for _, param in model.named_parameters():  # shared parameters are listed once
        if param.requires_grad:
            total += math.prod(param.shape)
    return int(total)


class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        if type(r) is not int or r < 1:
            raise ValueError("rank must be >= 1")
        if not isinstance(base, nn.Linear):
            raise TypeError("only nn.Linear layers can be adapted")
        for param in base.parameters():
            param.requires_grad = False
        self.base = base
        self.r = r
        self.alpha = alpha
        self.scaling = alpha / r
        self.p = dropout
        self.dropout = nn.Dropout(dropout)
        factory = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.zeros(r, base.in_features, **factory))
        limit = 1.0 / math.sqrt(base.in_features)  # what kaiming_uniform_(a=sqrt(5)) works out to
        nn.init.uniform_(self.lora_A, -limit, limit)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))

    def forward(self, x):
        dropped = F.dropout(x, self.p, self.training)
        low = torch.einsum("...i,ri->...r", dropped, self.lora_A)
        return F.linear(x, self.base.weight, self.base.bias) + self.scaling * torch.einsum("...r,or->...o", low,
                                                                                            self.lora_B)

    def merge(self):
        out = copy.deepcopy(self.base)  # new tensors, same dtype, device and bias
        with torch.no_grad():
            out.weight += torch.einsum("or,ri->oi", self.lora_B, self.lora_A) * self.scaling
        return out


def _walk(module, prefix=""):
    for child_name, child in module.named_children():
        full = f"{prefix}.{child_name}" if prefix else child_name
        yield module, child_name, full, child
        yield from _walk(child, full)


def apply_lora(model, r, alpha, target_modules, dropout=0.0):
    wanted = list(target_modules)
    hits = {t: [] for t in wanted}
    places = []
    for parent, child_name, full, child in _walk(model):
        matched = [t for t in wanted if full == t or full.endswith("." + t)]
        if matched:
            if not isinstance(child, nn.Linear):
                raise TypeError(f"{full} is not a linear layer")
            places.append((parent, child_name, child))
            for t in matched:
                hits[t].append(full)
    if not wanted or any(not found for found in hits.values()):
        raise ValueError(f"unmatched targets: {[t for t, f in hits.items() if not f] or wanted}")
    model.requires_grad_(False)
    for parent, child_name, child in places:
        setattr(parent, child_name, LoRALinear(child, r, alpha, dropout))
    return model


def merge_lora(model):
    for name, child in list(model.named_children()):
        if isinstance(child, LoRALinear):
            setattr(model, name, child.merge())
        else:
            merge_lora(child)
    return model
