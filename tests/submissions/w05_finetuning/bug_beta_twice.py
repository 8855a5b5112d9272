# builds on: correct_alternative
# BUG: beta scales the rewards and then the margin again (beta squared in the loss). Right only when
# beta = 1. Must lose: dpo_loss (0 / 7: every test has an example with beta != 1). Must keep everything
# else (36 / 43).
import torch.nn.functional as F


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(beta * (chosen - rejected)).mean()  # BUG: beta applied twice
    return loss, chosen.detach(), rejected.detach()
