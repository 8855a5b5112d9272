# HOSTILE: lets libraries and the kit do the work.
# * LoRALinear wraps the layer with PEFT's own LoRA (`from peft.tuners.lora import Linear`, renamed) and
#   merge_lora merges PEFT layers through the same alias: the banned-API check (static) scores both 0
#   before any test runs, whatever the code would compute.
# * apply_lora and count_trainable_parameters import the instructor's reference (`reference.lora`),
#   which the worker refuses (ImportError), also when the import is spelled with importlib and a
#   built string.
# * At the top level, `import reference.lora as R` fails while the notebook loads; loading goes on.
# Must score 0 / 32.
import importlib

import torch.nn as nn
from peft.tuners.lora import Linear as PeftLoraLinear

import reference.lora as R


class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.inner = PeftLoraLinear(base, "default", r=r, lora_alpha=alpha, lora_dropout=dropout)

    def forward(self, x):
        return self.inner(x)


def apply_lora(model, r, alpha, target_modules, dropout=0.0):
    reference = importlib.import_module("refer" + "ence.lora")
    return reference.apply_lora(model, r, alpha, target_modules, dropout)


def merge_lora(model):
    for module in model.modules():
        if isinstance(getattr(module, "inner", None), PeftLoraLinear):
            module.inner.merge()
    return model


def count_trainable_parameters(model):
    return R.count_trainable_parameters(model)
