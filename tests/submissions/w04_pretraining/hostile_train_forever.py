# Hostile code: train never returns (the grader's time limit must stop it, and it is not called again),
# save_checkpoint writes a file far over the worker's file-size limit (the worker is killed), and
# cross_entropy ends the worker's process. Nothing else is defined.
# Must score 0 with clear messages, and the grading must still complete in bounded time.
import os


def cross_entropy(logits, targets, ignore_index=-100):
    os._exit(0)


def train(model, train_loader, val_loader, optimizer, *, num_steps, eval_every, eval_batches, grad_accum_steps=1,
          max_lr, min_lr, warmup_steps, max_grad_norm=1.0, device="cpu"):
    while True:
        pass


def save_checkpoint(path, model, optimizer, step):
    with open(path, "wb") as f:
        for _ in range(100):
            f.write(b"\0" * (1 << 20))


def load_checkpoint(path, model, optimizer):
    return 0
