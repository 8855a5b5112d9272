# builds on: correct_alternative
# BUG: clips each parameter's gradient to max_norm on its own instead of scaling all of them by the global
# norm (the update changes direction). It still returns the correct global norm.
# Must lose clip_grad_norm's main test (2 of 4 points); the returned norm and the edge cases are right.
# train is graded with the kit's clipping: full marks there.
import torch


def clip_grad_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    with torch.no_grad():
        total = torch.sqrt(sum((g**2).sum() for g in grads))
        for g in grads:  # BUG: one parameter at a time
            g.mul_((max_norm / (g.norm() + 1e-6)).clamp(max=1.0))
    return total
