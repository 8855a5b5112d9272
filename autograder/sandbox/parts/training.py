"""Week 4's trusted stand-ins (the training week), built from PyTorch's own functions and classes.

While a hidden test grades the student's ``train``, the names it calls (``cross_entropy``,
``lr_at_step``, ``clip_grad_norm_``) are swapped for these, and the model, optimizer and data loaders it
is handed are built here, in the worker (a DataLoader or a model cannot cross the wire). So ``train`` is
graded on the loop alone, whatever the student's loss, schedule, clipping, AdamW or data pipeline do.
The tests of ``AdamW``, ``clip_grad_norm_`` and the checkpoints use the holders and helpers below to
keep parameters, gradients and models in the worker and read them back as data.

Nothing here imports ``reference``; ``tests/test_reference_training.py`` proves each stand-in equals the
reference. Only imported for weeks whose ``Assignment.parts`` lists "training" (it needs "gpt" too).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from . import warm_up_optimizers
from .gpt import GPTModel


warm_up_optimizers()  # optimizers and checkpoints are built in the worker


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


# ------------------------------------------------------------------------------------- models, optimizers
class RecordingGPTModel(GPTModel):
    """The kit's GPT model, which also notes, for every forward pass, the batch size, whether the model
    was in training mode and whether gradients were being recorded (read with ``forward_log``)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.forward_log = []

    def forward(self, in_idx):
        self.forward_log.append([int(in_idx.shape[0]), bool(self.training), bool(torch.is_grad_enabled())])
        return super().forward(in_idx)


def forward_log(model):
    """The forward passes recorded so far, as data; the log is emptied."""
    log, model.forward_log = model.forward_log, []
    return log


def model_state(model):
    """The model's parameters by name, as float32 CPU tensors (data for the grader)."""
    return {name: p.detach().to("cpu", torch.float32).clone() for name, p in model.named_parameters()}


def _params(target):
    return target.parameters() if isinstance(target, nn.Module) else target


def TorchAdamW(target, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    """PyTorch's AdamW over a model's (or a holder's) parameters, single-tensor code path."""
    return torch.optim.AdamW(_params(target), lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                             foreach=False)


def TorchSGD(target, lr=0.1):
    """Plain SGD: an update exactly proportional to the gradient (shows gradient scale errors)."""
    return torch.optim.SGD(_params(target), lr=lr, foreach=False)


def optimizer_lrs(optimizer):
    """The learning rate of each param group, or a message saying why it cannot be read."""
    try:
        return [float(group["lr"]) for group in optimizer.param_groups]
    except Exception as exc:  # noqa: BLE001  (the optimizer may be the student's)
        return f"cannot read optimizer.param_groups[...]['lr']: {type(exc).__name__}: {exc}"


def set_lr(optimizer, lr):
    """Set every param group's learning rate, as a scheduler would; a message if that is impossible."""
    try:
        for group in optimizer.param_groups:
            group["lr"] = float(lr)
    except Exception as exc:  # noqa: BLE001  (the optimizer may be the student's)
        return f"cannot set optimizer.param_groups[...]['lr']: {type(exc).__name__}: {exc}"
    return None


class ParamBox:
    """Parameters that stay in the worker. Iterating gives them (so ``AdamW(box)`` and
    ``clip_grad_norm_(box, ...)`` receive an iterable of parameters, as with ``model.parameters()``);
    the grader sets gradients and reads values and gradients back through the methods."""

    def __init__(self, values, requires_grad=None, device="cpu"):
        requires_grad = requires_grad or [True] * len(values)
        self.params = [nn.Parameter(v.detach().clone().to(device), requires_grad=bool(r))
                       for v, r in zip(values, requires_grad)]

    def __iter__(self):
        return iter(self.params)

    def __len__(self):
        return len(self.params)

    def set_grads(self, grads):
        for p, g in zip(self.params, grads):
            p.grad = None if g is None else g.detach().clone().to(p.device, p.dtype)

    def values(self):
        return [p.detach().cpu().clone() for p in self.params]

    def grads(self):
        return [None if p.grad is None else p.grad.detach().cpu().clone() for p in self.params]

    def devices(self):
        return [str(p.device) for p in self.params]


def run_steps(model, optimizer, token_ids, batch_size, context_length, start, stop, max_lr, min_lr, warmup_steps,
              total_steps, device="cpu"):
    """A trusted training loop for the checkpoint tests: step s trains on window batch s (mod the number
    of batches) of ``token_ids`` with the scheduled learning rate. Returns the losses."""
    inputs, targets = _windows(token_ids, context_length, context_length)
    count = inputs.shape[0] // batch_size
    model.train()
    losses = []
    for step in range(start, stop):
        rows = slice((step % count) * batch_size, (step % count + 1) * batch_size)
        for group in optimizer.param_groups:
            group["lr"] = lr_at_step(step, max_lr, min_lr, warmup_steps, total_steps)
        optimizer.zero_grad()
        logits = model(inputs[rows].to(device))
        loss = F.cross_entropy(logits.flatten(0, 1), targets[rows].to(device).flatten())
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def evaluate(model, loader, num_batches, device="cpu"):
    """The kit's measurement of a model: mean loss over the first ``num_batches`` batches, in eval mode."""
    model.eval()
    losses = []
    for i, (inputs, targets) in enumerate(loader):
        if i >= num_batches:
            break
        losses.append(cross_entropy(model(inputs.to(device)), targets.to(device)).item())
    return sum(losses) / len(losses)


def file_size(path):
    """Size in bytes of the file at ``path`` (relative to the worker's folder), or -1 if there is none."""
    return os.path.getsize(path) if os.path.isfile(path) else -1


def swap_files(first, second):
    """Exchange the contents of two files (a checkpoint must be read from the file it names)."""
    scratch = first + ".swap"
    os.replace(first, scratch)
    os.replace(second, first)
    os.replace(scratch, second)


def to_device(model, device):
    """Move a model to ``device`` in place (the same module object)."""
    model.to(device)
    return None


PARTS = {
    "cross_entropy": cross_entropy, "lr_at_step": lr_at_step, "clip_grad_norm_": clip_grad_norm_,
    "create_dataloader": create_dataloader, "RecordingGPTModel": RecordingGPTModel, "forward_log": forward_log,
    "model_state": model_state, "TorchAdamW": TorchAdamW, "TorchSGD": TorchSGD, "optimizer_lrs": optimizer_lrs,
    "set_lr": set_lr, "ParamBox": ParamBox, "run_steps": run_steps,
    "to_device": to_device, "evaluate": evaluate, "file_size": file_size, "swap_files": swap_files,
}
