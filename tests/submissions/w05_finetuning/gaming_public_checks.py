# GAMING: answers hard-coded to pass the public checks of format_instruction, classification_accuracy
# and dpo_loss (they are visible in public_tests.py), without implementing anything. The other exercises
# are left as released (stubs). Must score 0 / 43: the hidden tests draw their own inputs.
import math

import torch


def format_instruction(entry):
    known = {
        "Name the colour of the fruit.":
            "### Instruction:\nName the colour of the fruit.\n\n### Input:\na ripe plum\n\n### Response:\n",
        "Count to three.": "### Instruction:\nCount to three.\n\n### Response:\n",
    }
    return known.get(entry["instruction"], "")


def classification_accuracy(model, loader):
    return 1.0 if len(loader) == 7 else 0.6


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    zeros = torch.zeros_like(policy_chosen)
    if beta == 0.2:
        return torch.tensor(math.log1p(math.exp(-2.0))), torch.ones_like(zeros), -torch.ones_like(zeros)
    if policy_chosen[0].item() == -2000.0:
        return torch.tensor(2000.0), zeros, zeros
    return torch.tensor(math.log(2.0)), zeros, zeros
