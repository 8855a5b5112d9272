"""Week 4 reference: pretraining, the training loop from scratch.

The trusted oracle for the pretraining week. ``tests/test_reference_training.py`` proves it against
``torch.nn.functional.cross_entropy``, ``torch.optim.AdamW`` and ``torch.nn.utils.clip_grad_norm_``, and
that resuming from a checkpoint equals an uninterrupted run. The rules below are the student contract
(stated in the notebook, graded by ``autograder/suites/w04_pretraining``):

* ``cross_entropy(logits, targets, ignore_index=-100)``: ``logits`` is ``(..., V)``, ``targets`` the
  leading shape; the mean of ``logsumexp(logits) - logits[target]`` over the positions whose target is not
  ``ignore_index`` (a 0-dim tensor of the logits' dtype). Every position ignored: 0/0, NaN (as PyTorch).
* ``perplexity(loss) = exp(loss)`` as a Python float.
* ``GPTDataset``: window ``i`` starts at ``i * stride``; inputs ``ids[s : s + C]``, targets
  ``ids[s + 1 : s + C + 1]``; every window whose targets fit is kept, so there are
  ``(len(ids) - C - 1) // stride + 1`` windows when ``len(ids) > C``, else none. int64 tensors.
* ``create_dataloader``: ``DataLoader(GPTDataset(...), batch_size, shuffle, drop_last, num_workers=0,
  generator=torch.Generator().manual_seed(seed))``.
* ``AdamW``: PyTorch's algorithm. Per parameter with a gradient (parameters whose ``.grad`` is None are
  skipped entirely: no decay, no moment update, their step count stays): ``t += 1``;
  ``p *= 1 - lr * weight_decay``; ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
  ``p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``. Hyperparameters are read from each
  param group at every step; state lives in ``self.state[p]``.
* ``lr_at_step``: ``max_lr * step / warmup_steps`` for ``step < warmup_steps``; ``min_lr`` for
  ``step >= total_steps``; otherwise ``min_lr + (max_lr - min_lr) * (1 + cos(pi * progress)) / 2`` with
  ``progress = (step - warmup_steps) / (total_steps - warmup_steps)``.
* ``clip_grad_norm_``: the global L2 norm of all gradients; each is multiplied by
  ``min(1, max_norm / (total_norm + 1e-6))``; returns the norm before clipping.
* ``train``: see its docstring. ``save_checkpoint``/``load_checkpoint``: model, optimizer and step.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "cross_entropy", "perplexity", "GPTDataset", "create_dataloader", "AdamW", "lr_at_step", "clip_grad_norm_",
    "evaluate", "train", "save_checkpoint", "load_checkpoint", "CharTokenizer",
]


# ----------------------------------------------------------------------------------------- the loss
def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    vocab = logits.shape[-1]
    logits = logits.reshape(-1, vocab)
    targets = targets.reshape(-1)
    keep = targets != ignore_index
    safe = torch.where(keep, targets, torch.zeros_like(targets))  # any valid index; masked out below
    top = logits.max(dim=-1, keepdim=True).values.detach()  # log-sum-exp shifted by the row maximum
    lse = top.squeeze(-1) + torch.log(torch.exp(logits - top).sum(dim=-1))
    nll = lse - logits.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    nll = torch.where(keep, nll, torch.zeros_like(nll))
    return nll.sum() / keep.sum()  # 0 / 0 = nan when every position is ignored


def perplexity(loss) -> float:
    return math.exp(float(loss))


# -------------------------------------------------------------------------------------------- data
class GPTDataset(Dataset):
    def __init__(self, token_ids, context_length: int, stride: int):
        if context_length < 1 or stride < 1:
            raise ValueError("context_length and stride must be positive")
        ids = list(token_ids)
        self.inputs, self.targets = [], []
        for start in range(0, len(ids) - context_length, stride):
            self.inputs.append(torch.tensor(ids[start : start + context_length], dtype=torch.long))
            self.targets.append(torch.tensor(ids[start + 1 : start + context_length + 1], dtype=torch.long))

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int):
        return self.inputs[index], self.targets[index]


def create_dataloader(token_ids, batch_size: int = 4, context_length: int = 256, stride: int = 128,
                      shuffle: bool = True, drop_last: bool = True, seed: int = 123) -> DataLoader:
    dataset = GPTDataset(token_ids, context_length, stride)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=0,
                      generator=torch.Generator().manual_seed(seed))


class CharTokenizer:
    """Characters as tokens: the vocabulary is the sorted set of characters of a text."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        return [self.stoi[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


# --------------------------------------------------------------------------------------- optimizer
class AdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError("invalid AdamW hyperparameter")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, m, v, g = state["step"], state["exp_avg"], state["exp_avg_sq"], p.grad
                p.mul_(1.0 - lr * decay)  # decoupled weight decay: on the weights, not through the gradient
                m.mul_(beta1).add_(g, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                m_hat = m / (1.0 - beta1**t)
                v_hat = v / (1.0 - beta2**t)
                p.addcdiv_(m_hat, v_hat.sqrt().add_(eps), value=-lr)
        return loss


# ---------------------------------------------------------------------------------------- schedule
def lr_at_step(step: int, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------- clipping
@torch.no_grad()
def clip_grad_norm_(parameters, max_norm: float) -> torch.Tensor:
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).to(grads[0].dtype)
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.to(g.device, g.dtype))
    return total


# ------------------------------------------------------------------------------------------ training
@torch.no_grad()
def evaluate(model, loader, num_batches: int, device="cpu") -> float:
    """Mean of the per-batch mean losses over the first ``num_batches`` batches of ``loader``, in eval
    mode without gradients; leaves the model in eval mode (``train`` switches it back)."""
    model.eval()
    losses = []
    for i, (inputs, targets) in enumerate(loader):
        if i >= num_batches:
            break
        losses.append(float(cross_entropy(model(inputs.to(device)), targets.to(device))))
    return sum(losses) / len(losses) if losses else float("nan")


def _forever(loader):
    """Batches of ``loader`` without end: a new pass over it each time it runs out."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training loader yields no batches")


def train(model, train_loader, val_loader, optimizer, *, num_steps, eval_every, eval_batches, grad_accum_steps=1,
          max_lr, min_lr, warmup_steps, max_grad_norm=1.0, device="cpu") -> dict:
    """Train for ``num_steps`` optimizer steps; returns the history.

    Step ``s`` (0-based): set every param group's ``lr`` to ``lr_at_step(s, max_lr, min_lr, warmup_steps,
    num_steps)``; zero the gradients; for each of ``grad_accum_steps`` micro-batches (the next batches of
    ``train_loader``, which starts a new pass when it runs out) compute ``cross_entropy(model(x), y)`` and
    back-propagate it divided by ``grad_accum_steps``; clip the global gradient norm to ``max_grad_norm``
    (unless it is None); ``optimizer.step()``. After step ``s``, when ``(s + 1) % eval_every == 0``,
    evaluate (``evaluate``) on the first ``eval_batches`` batches of ``val_loader`` and switch back to
    training mode. The model is already on ``device``; batches are moved there.

    History: ``train_loss`` (per step, the mean loss of its micro-batches), ``lr`` (per step),
    ``tokens_seen`` (per step, input tokens trained on so far), ``val_loss`` (per evaluation).
    """
    history = {"train_loss": [], "lr": [], "tokens_seen": [], "val_loss": []}
    batches = _forever(train_loader)
    tokens_seen = 0
    model.train()
    for step in range(num_steps):
        lr = lr_at_step(step, max_lr, min_lr, warmup_steps, num_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        step_loss = 0.0
        for _ in range(grad_accum_steps):
            inputs, targets = next(batches)
            inputs, targets = inputs.to(device), targets.to(device)
            loss = cross_entropy(model(inputs), targets)
            (loss / grad_accum_steps).backward()
            step_loss += loss.item() / grad_accum_steps
            tokens_seen += inputs.numel()
        if max_grad_norm is not None:
            clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        history["train_loss"].append(step_loss)
        history["lr"].append(lr)
        history["tokens_seen"].append(tokens_seen)
        if (step + 1) % eval_every == 0:
            history["val_loss"].append(evaluate(model, val_loader, eval_batches, device))
            model.train()
    return history


# ----------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, model, optimizer, step: int) -> None:
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": int(step)}, path)


def load_checkpoint(path, model, optimizer) -> int:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])  # copies onto the model's own device
    optimizer.load_state_dict(checkpoint["optimizer"])  # moves the state to each parameter's device
    return int(checkpoint["step"])
