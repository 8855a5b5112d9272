# builds on: correct_alternative
# BUG: the warm-up is off by one: step 0 already gets max_lr / warmup_steps and max_lr is reached one step
# early. Must lose lr_at_step's reference and warm-up tests (3 of 4 points); the decay and end-of-run test
# does not involve the warm-up. train is graded with the kit's schedule: full marks there.
import math


def lr_at_step(step, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps  # BUG: should be step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
