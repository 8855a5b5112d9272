# Gaming the grader: train never trains; it returns a history of the right shape with the right learning
# rates and a made-up, nicely falling loss. The checkpoints live in a dict in memory instead of the file
# (copies, so a resumed run in the same process would even be right). Nothing else is defined.
# Must score 0: the kit compares the weights with the reference run, counts the forward passes, measures
# the trained model itself, and checks that the checkpoint is the file.
import copy
import math

import torch


def _schedule(step, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def train(model, train_loader, val_loader, optimizer, *, num_steps, eval_every, eval_batches, grad_accum_steps=1,
          max_lr, min_lr, warmup_steps, max_grad_norm=1.0, device="cpu"):
    x, _ = next(iter(train_loader))  # only to count tokens
    per_step = x.numel() * grad_accum_steps
    losses = [3.9 * math.exp(-s / 40) + 1.0 for s in range(num_steps)]
    return {"train_loss": losses,
            "lr": [_schedule(s, max_lr, min_lr, warmup_steps, num_steps) for s in range(num_steps)],
            "tokens_seen": [per_step * (s + 1) for s in range(num_steps)],
            "val_loss": [losses[s] + 0.05 for s in range(eval_every - 1, num_steps, eval_every)]}


_SAVED = {}


def save_checkpoint(path, model, optimizer, step):
    _SAVED[str(path)] = copy.deepcopy((model.state_dict(), optimizer.state_dict(), step))


def load_checkpoint(path, model, optimizer):
    weights, state, step = _SAVED[str(path)]
    model.load_state_dict(weights)
    optimizer.load_state_dict(state)
    return step
