"""Week 4's test tools: data loaders over windows the grader cut, optimizers, holders and helpers that keep
parameters and files in the worker and hand the grader plain data, and the kit's own short training loop
and measurement for the checkpoint tests (learning rates given, never scheduled here). None of them
implements a graded exercise (``SOLVES`` is empty), so a public snapshot bundle may carry this module
(``autograder/export/weeks.py``).
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from . import warm_up_optimizers

SOLVES: tuple[str, ...] = ()

warm_up_optimizers()  # optimizers and checkpoints are built in the worker


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



def window_loader(inputs, targets, batch_size, shuffle, drop_last, seed):
    """A DataLoader over (input, target) windows the grader cut with the reference, shuffled by a seeded
    generator: the batches ``create_dataloader`` would give."""
    return DataLoader(TensorDataset(inputs, targets), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      num_workers=0, generator=torch.Generator().manual_seed(int(seed)))


def run_steps(model, optimizer, inputs, targets, batch_size, start, lrs, device="cpu"):
    """A trusted training loop for the checkpoint tests: step ``start + i`` trains with learning rate
    ``lrs[i]`` on window batch ``start + i`` (mod the number of batches). Returns the losses."""
    count = inputs.shape[0] // batch_size
    model.train()
    losses = []
    for step, lr in enumerate(lrs, start):
        rows = slice((step % count) * batch_size, (step % count + 1) * batch_size)
        for group in optimizer.param_groups:
            group["lr"] = lr
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
    for _, (inputs, targets) in zip(range(num_batches), loader):
        logits = model(inputs.to(device))
        losses.append(F.cross_entropy(logits.flatten(0, 1), targets.to(device).flatten()).item())
    return sum(losses) / len(losses)


PARTS = {
    "model_state": model_state, "TorchAdamW": TorchAdamW, "TorchSGD": TorchSGD, "optimizer_lrs": optimizer_lrs,
    "set_lr": set_lr, "ParamBox": ParamBox, "file_size": file_size, "swap_files": swap_files, "to_device": to_device,
    "window_loader": window_loader, "run_steps": run_steps, "evaluate": evaluate,
}
