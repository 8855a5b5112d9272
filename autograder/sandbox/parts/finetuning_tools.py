"""Week 5's test tools: helpers that read what the grader cannot see over the wire (which parameters
train, their values and gradients), undo global switches, redraw a head from a seed and build an optimizer,
all in the worker. None of them implements a graded exercise (``SOLVES`` is empty), so a public snapshot
bundle may carry this module (``autograder/export/weeks.py``).
"""

from __future__ import annotations

import torch

from . import warm_up_optimizers

SOLVES: tuple[str, ...] = ()

warm_up_optimizers()  # optimizers are built in the worker


def trainable_names(model):
    """Sorted names of the parameters with requires_grad=True."""
    return sorted(name for name, p in model.named_parameters() if p.requires_grad)


def parameters(model):
    """Every parameter by name, as plain tensors (copies)."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def gradients(model):
    """Every parameter's .grad by name (None where there is none)."""
    return {name: (None if p.grad is None else p.grad.detach().clone()) for name, p in model.named_parameters()}


def zero_grads(model):
    model.zero_grad(set_to_none=True)


def restore_defaults():
    """Undo global switches that student code may have flipped and left (grad mode, default dtype),
    so one exercise's sloppiness cannot fail the next exercise's gradient checks."""
    torch.set_grad_enabled(True)
    torch.set_default_dtype(torch.float32)


def reset_head(model, seed):
    """Redraw out_head's weight and bias from a seeded generator (nn.Linear's own distribution,
    uniform within 1/sqrt(fan_in)), so a finetune does not depend on how a student's code drew them."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name in ("weight", "bias"):
            param = getattr(model.out_head, name, None)
            if isinstance(param, torch.Tensor):
                bound = 1.0 / model.out_head.weight.shape[1] ** 0.5
                param.copy_((torch.rand(param.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound)


def classifier_optimizer(model, lr):
    """AdamW over the parameters that require grad (no weight decay)."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)


PARTS = {
    "trainable_names": trainable_names, "parameters": parameters, "gradients": gradients, "zero_grads": zero_grads,
    "restore_defaults": restore_defaults, "reset_head": reset_head, "classifier_optimizer": classifier_optimizer,
}
