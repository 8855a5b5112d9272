"""Week 4's trusted stand-ins (the training week), built from PyTorch's own functions and classes.

While a hidden test grades the student's ``train``, the names it calls (``cross_entropy``,
``lr_at_step``, ``clip_grad_norm_``) are swapped for these, and the model, optimizer and data loaders it
is handed are built here, in the worker (a DataLoader or a model cannot cross the wire). So ``train`` is
graded on the loop alone, whatever the student's loss, schedule, clipping, AdamW or data pipeline do.
The data loaders, optimizers, holders, the kit's own short training loop and its measurement, which
implement no exercise, are in ``training_tools.py``.

Nothing here imports ``reference``; ``tests/test_reference_training.py`` proves each stand-in equals the
reference. Only imported for weeks whose ``Assignment.parts`` lists "training".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SOLVES = ("w04_pretraining",)  # a snapshot bundle never carries this module (autograder/export/weeks.py)


# -------------------------------------------------------------------- the student's names, done by PyTorch
def cross_entropy(logits, targets, ignore_index=-100):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=ignore_index)


def lr_at_step(step, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    cosine = math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + cosine)


def clip_grad_norm_(parameters, max_norm):
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)


def _windows(token_ids, context_length, stride):
    ids = torch.as_tensor(token_ids, dtype=torch.long).reshape(-1)
    if ids.numel() <= context_length:
        empty = torch.empty(0, context_length, dtype=torch.long)
        return empty, empty.clone()
    starts = torch.arange(0, ids.numel() - context_length, stride)
    offsets = torch.arange(context_length)
    return ids[starts[:, None] + offsets], ids[starts[:, None] + offsets + 1]


def create_dataloader(token_ids, batch_size=4, context_length=256, stride=128, shuffle=True, drop_last=True, seed=123):
    inputs, targets = _windows(token_ids, context_length, stride)
    return DataLoader(TensorDataset(inputs, targets), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=0, generator=torch.Generator().manual_seed(int(seed)))


PARTS = {
    "cross_entropy": cross_entropy, "lr_at_step": lr_at_step, "clip_grad_norm_": clip_grad_norm_,
    "create_dataloader": create_dataloader,
}
