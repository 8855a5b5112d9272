# A correct solution written differently from the instructor's: a Python loop for the windows and an
# explicit sampler; a one-hot mask instead of gather in the loss; AdamW's decay folded into the update
# (p - lr * (update + wd * p), the same number); the schedule by phases; clipping with
# torch.linalg.vector_norm, only when over the limit; a generator-based training loop with inference_mode
# for evaluation; a checkpoint loaded onto the model's own device. Must score full marks.
import math

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler


class GPTDataset(Dataset):
    def __init__(self, token_ids, context_length, stride):
        self.pairs = []
        start = 0
        while start + context_length < len(token_ids):
            chunk = token_ids[start : start + context_length + 1]
            self.pairs.append((chunk[:-1], chunk[1:]))
            start += stride

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        x, y = self.pairs[i]
        return torch.tensor(x, dtype=torch.long), torch.tensor(y, dtype=torch.long)


def create_dataloader(token_ids, batch_size=4, context_length=256, stride=128, shuffle=True, drop_last=True,
                      seed=123):
    data = GPTDataset(token_ids, context_length, stride)
    g = torch.Generator()
    g.manual_seed(seed)
    sampler = RandomSampler(data, generator=g) if shuffle else SequentialSampler(data)
    return DataLoader(data, batch_size=batch_size, sampler=sampler, drop_last=drop_last)


def cross_entropy(logits, targets, ignore_index=-100):
    z = logits.flatten(0, -2)
    t = targets.flatten()
    valid = t != ignore_index
    shift = z.amax(dim=1, keepdim=True)
    lse = torch.log(torch.sum(torch.exp(z - shift), dim=1)) + shift[:, 0]
    onehot = torch.nn.functional.one_hot(t.clamp(min=0) * valid, z.shape[1]).to(z.dtype)
    picked = (z * onehot).sum(dim=1)
    per_position = lse - picked
    return per_position[valid].sum() / valid.sum().to(z.dtype)


def perplexity(loss):
    return float(torch.exp(torch.as_tensor(loss, dtype=torch.float64)))


class AdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        with torch.no_grad():
            for group in self.param_groups:
                b1, b2 = group["betas"]
                for p in group["params"]:
                    g = p.grad
                    if g is None:
                        continue
                    st = self.state[p]
                    if "t" not in st:
                        st["t"] = torch.tensor(0.0)
                        st["m"] = torch.zeros_like(p)
                        st["v"] = torch.zeros_like(p)
                    st["t"] += 1
                    t = int(st["t"].item())
                    st["m"].lerp_(g, 1 - b1)  # m + (1 - b1) (g - m) = b1 m + (1 - b1) g
                    st["v"].mul_(b2).add_((1 - b2) * g * g)
                    update = (st["m"] / (1 - b1**t)) / ((st["v"] / (1 - b2**t)).sqrt() + group["eps"])
                    p.add_(-group["lr"] * (update + group["weight_decay"] * p))
        return loss


def lr_at_step(step, max_lr, min_lr, warmup_steps, total_steps):
    if step >= warmup_steps and step >= total_steps:
        return min_lr
    if step >= warmup_steps:
        fraction_done = (step - warmup_steps) / (total_steps - warmup_steps)
        return min_lr + (max_lr - min_lr) * (math.cos(math.pi * fraction_done) + 1) / 2
    return step * (max_lr / warmup_steps)


def clip_grad_norm_(parameters, max_norm):
    grads = []
    for p in parameters:
        if p.grad is not None:
            grads.append(p.grad)
    if len(grads) == 0:
        return torch.tensor(0.0)
    norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
    total = torch.linalg.vector_norm(norms)
    if total > max_norm:
        factor = max_norm / (total + 1e-6)
        for g in grads:
            g.detach().mul_(factor)
    return total


def batches_forever(loader):
    while True:
        yield from loader


def train(model, train_loader, val_loader, optimizer, *, num_steps, eval_every, eval_batches, grad_accum_steps=1,
          max_lr, min_lr, warmup_steps, max_grad_norm=1.0, device="cpu"):
    log = {"train_loss": [], "lr": [], "tokens_seen": [], "val_loss": []}
    stream = batches_forever(train_loader)
    seen = 0
    model.train()
    step = 0
    while step < num_steps:
        rate = lr_at_step(step, max_lr, min_lr, warmup_steps, num_steps)
        for g in optimizer.param_groups:
            g["lr"] = rate
        optimizer.zero_grad(set_to_none=True)
        losses = []
        for _ in range(grad_accum_steps):
            x, y = next(stream)
            x = x.to(device)
            y = y.to(device)
            loss = cross_entropy(model(x), y)
            (loss * (1.0 / grad_accum_steps)).backward()
            losses.append(loss.detach())
            seen += y.numel()
        if max_grad_norm is not None:
            clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        log["train_loss"].append(float(torch.stack(losses).mean()))
        log["lr"].append(rate)
        log["tokens_seen"].append(seen)
        step += 1
        if step % eval_every == 0:
            model.eval()
            total, count = 0.0, 0
            with torch.inference_mode():
                for i, (x, y) in enumerate(val_loader):
                    if i == eval_batches:
                        break
                    total += cross_entropy(model(x.to(device)), y.to(device)).item()
                    count += 1
            log["val_loss"].append(total / count)
            model.train()
    return log


def save_checkpoint(path, model, optimizer, step):
    torch.save({"step": step, "model_state": model.state_dict(), "optim_state": optimizer.state_dict()}, str(path))


def load_checkpoint(path, model, optimizer):
    where = next(model.parameters()).device
    saved = torch.load(str(path), map_location=where)
    model.load_state_dict(saved["model_state"])
    optimizer.load_state_dict(saved["optim_state"])
    return saved["step"]
