# builds on: correct_alternative
# BUG: the margin has the wrong sign: the loss rewards the rejected answers. The rewards themselves are
# right, and the loss still decreases during training. Must lose: dpo_loss (0 / 7: every loss check,
# including the worked example). Must keep everything else (36 / 43).
import torch.nn.functional as F


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(rejected - chosen).mean()  # BUG: chosen - rejected
    return loss, chosen.detach(), rejected.detach()
