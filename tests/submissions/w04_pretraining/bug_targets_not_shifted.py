# builds on: correct_alternative
# BUG: GPTDataset's targets are the inputs themselves, not the window shifted by one token.
# Must lose all of gpt_dataset (every window's targets are wrong, and so are the loaders built on it).
# Must keep full marks elsewhere: train is graded with the kit's own data loaders.
import torch
from torch.utils.data import Dataset


class GPTDataset(Dataset):
    def __init__(self, token_ids, context_length, stride):
        self.windows = []
        for start in range(0, len(token_ids) - context_length, stride):
            self.windows.append(token_ids[start : start + context_length])

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, i):
        window = torch.tensor(self.windows[i], dtype=torch.long)
        return window, window.clone()  # BUG: the target should be the next token at every position
