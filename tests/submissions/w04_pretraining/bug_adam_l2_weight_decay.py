# builds on: correct_alternative
# BUG: Adam with L2 regularisation instead of AdamW: weight_decay * p is added to the gradient, so the decay
# goes through the moments and is divided by sqrt(v_hat) like the rest of the gradient.
# Must lose adamw's reference, missing-gradient and param-group tests (weight decay > 0 there); the
# state_dict round trip compares the submission with itself and keeps its point. Everything else full marks.
import torch


class AdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                state["step"] += 1
                t = state["step"]
                g = p.grad + group["weight_decay"] * p  # BUG: L2 through the gradient, not decoupled decay
                state["exp_avg"].mul_(b1).add_(g, alpha=1 - b1)
                state["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat = state["exp_avg"] / (1 - b1**t)
                v_hat = state["exp_avg_sq"] / (1 - b2**t)
                p.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))
