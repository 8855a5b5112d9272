"""Week 5's trusted stand-ins: classification pieces, and helpers that read facts off a model in the worker.

Hidden tests of week 5 build a trusted GPT in the worker (``parts/gpt.py``) and hand it to the student's
functions. These parts let a test (a) give the student's ``classification_accuracy`` a trusted
``classification_logits`` (``Remote.using``), so a bug there costs points only once; (b) prepare a model
for classification without the student's ``prepare_for_classification``; (c) read what the grader cannot
see over the wire: which parameters train, their values and gradients; (d) run a short trusted
finetune of a prepared model, in as many calls as the grader likes (each call stays far below the time
limit), from a head redrawn with a fixed seed. They use PyTorch's own functions and never import ``reference``;
``tests/test_reference_finetuning.py`` proves they agree with ``reference/finetuning.py``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import warm_up_optimizers

warm_up_optimizers()  # optimizers are built in the worker


def prepare_for_classification(model, num_classes):
    model.requires_grad_(False)
    width = model.tok_emb.weight.shape[1]
    model.out_head = nn.Linear(width, num_classes).to(model.tok_emb.weight.dtype)
    model.trf_blocks[len(model.trf_blocks) - 1].requires_grad_(True)
    model.final_norm.requires_grad_(True)
    return model


def classification_logits(model, input_ids):
    return model(input_ids).select(1, input_ids.shape[1] - 1)


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
    for p in model.parameters():
        p.grad = None


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


def finetune_classifier(model, optimizer, input_ids, labels, batches):
    """Train a prepared model on the given batches (lists of row indices), one optimiser step each:
    cross-entropy of the last position's logits. Returns the loss of every step."""
    restore_defaults()
    model.train()
    losses = []
    for rows in batches:
        rows = torch.as_tensor(rows, dtype=torch.long)
        logits = model(input_ids[rows]).select(1, input_ids.shape[1] - 1)
        loss = F.cross_entropy(logits, labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


PARTS = {
    "prepare_for_classification": prepare_for_classification, "classification_logits": classification_logits,
    "trainable_names": trainable_names, "parameters": parameters, "gradients": gradients, "zero_grads": zero_grads,
    "restore_defaults": restore_defaults, "reset_head": reset_head,
    "classifier_optimizer": classifier_optimizer, "finetune_classifier": finetune_classifier,
}
