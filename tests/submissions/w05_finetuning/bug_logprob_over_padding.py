# builds on: correct_alternative
# BUG: the log-probabilities are summed over every position, padding and prompt included, then divided
# by the number of response tokens (the -100 labels are clamped to 0 so that gather does not fail).
# Must lose: sequence_logprob (0 / 7). Must keep everything else (36 / 43).
import torch
import torch.nn.functional as F


def sequence_logprob(logits, labels, mask, reduction="mean"):
    token_logps = F.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total = token_logps.sum(dim=-1)  # BUG: the mask is not applied
    if reduction == "sum":
        return total
    return total / mask.sum(dim=-1).clamp(min=1)
