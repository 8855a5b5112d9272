# builds on: correct_alternative
# BUG: gradient accumulation without dividing each micro-batch's loss by grad_accum_steps: the gradient
# is k times too large. AdamW normalises the step, so the damage is small there but still beyond the
# tolerance (through eps and clipping); with plain SGD the steps are k times too long. Must lose train's
# reference and accumulation tests (6 of 10 points; the mode and end-to-end tests still pass), everything
# else full marks.
import torch


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
            loss.backward()  # BUG: not divided by grad_accum_steps
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
