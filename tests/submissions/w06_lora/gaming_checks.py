# GAMING: collect points without doing the work. LoRALinear and apply_lora refuse every call (hoping
# for the "raises on bad arguments" points), merge_lora hands the model back unchanged (an unmerged
# adapter still gives the adapted model's outputs), and count_trainable_parameters counts the
# parameters whose names start with "lora_" (right for the course's adapted models only).
# Must score 0 / 32: the error tests also require valid arguments to be accepted, both merge_lora tests
# require that no adapter is left, and the count tests freeze other parameters and use models
# without adapters.
import torch.nn as nn


class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        raise ValueError("r must be positive")


def apply_lora(model, r, alpha, target_modules, dropout=0.0):
    raise ValueError("no module matches the targets")


def merge_lora(model):
    return model


def count_trainable_parameters(model):
    return sum(p.numel() for name, p in model.named_parameters() if name.rsplit(".", 1)[-1].startswith("lora_"))
