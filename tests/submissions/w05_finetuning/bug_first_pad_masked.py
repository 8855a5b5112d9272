# builds on: correct_alternative
# BUG: the collate ignores every padding target, the end of text included, so the model never learns to
# stop. Must lose: collate_instructions (0 / 10: every collated row has its end-of-text target).
# Must keep full marks everywhere else (33 / 43).
import torch


def collate_instructions(batch, pad_token_id, ignore_index=-100, allowed_max_length=None, prompt_lengths=None):
    longest = max(len(seq) for seq in batch) + 1
    padded = torch.tensor([list(seq) + [pad_token_id] * (longest - len(seq)) for seq in batch], dtype=torch.long)
    inputs, targets = padded[:, :-1].clone(), padded[:, 1:].clone()
    targets[targets == pad_token_id] = ignore_index  # BUG: the first padding target (end of text) is masked too
    if prompt_lengths is not None:
        for i, p in enumerate(prompt_lengths):
            targets[i, : max(p - 1, 0)] = ignore_index
    if allowed_max_length is not None:
        inputs, targets = inputs[:, :allowed_max_length], targets[:, :allowed_max_length]
    return inputs, targets
