# builds on: correct_alternative
# BUG: the targets are the inputs themselves, not shifted by one: the model learns to copy its input.
# Must lose: collate_instructions (0 / 10). Must keep everything else (33 / 43).
import torch


def collate_instructions(batch, pad_token_id, ignore_index=-100, allowed_max_length=None, prompt_lengths=None):
    longest = max(len(seq) for seq in batch) + 1
    padded = torch.tensor([list(seq) + [pad_token_id] * (longest - len(seq)) for seq in batch], dtype=torch.long)
    inputs = padded[:, :-1].clone()
    targets = padded[:, :-1].clone()  # BUG: should be padded[:, 1:]
    for i, seq in enumerate(batch):
        targets[i, len(seq) + 1:] = ignore_index
        if prompt_lengths is not None:
            targets[i, : max(prompt_lengths[i] - 1, 0)] = ignore_index
    if allowed_max_length is not None:
        inputs, targets = inputs[:, :allowed_max_length], targets[:, :allowed_max_length]
    return inputs, targets
