# builds on: correct_alternative
# BUG: the prompt is masked one target too far: targets[:p] instead of targets[:p - 1], so the first
# response token is never learned. Without prompt_lengths the collate is right.
# Must lose: collate_instructions' prompt tests (masks the prompt 3, lengths zero and one 1, truncation 2,
# which passes prompt lengths in about half its examples). Must keep: padding/shift 3, all-padding rows 1,
# so collate 4 / 10, and every other exercise (37 / 43).
import torch


def collate_instructions(batch, pad_token_id, ignore_index=-100, allowed_max_length=None, prompt_lengths=None):
    longest = max(len(seq) for seq in batch) + 1
    padded = torch.tensor([list(seq) + [pad_token_id] * (longest - len(seq)) for seq in batch], dtype=torch.long)
    inputs, targets = padded[:, :-1].clone(), padded[:, 1:].clone()
    for i, seq in enumerate(batch):
        targets[i, max(len(seq) - 1, 0) + 1:] = ignore_index
        if prompt_lengths is not None:
            targets[i, : prompt_lengths[i]] = ignore_index  # BUG: one too many
    if allowed_max_length is not None:
        inputs, targets = inputs[:, :allowed_max_length], targets[:, :allowed_max_length]
    return inputs, targets
