"""Week 5's trusted stand-ins: the classification pieces and a trusted finetune (helpers in ``finetuning_tools.py``).

Hidden tests of week 5 build a trusted GPT in the worker (``parts/gpt.py``) and hand it to the student's
functions. These parts let a test (a) give the student's ``classification_accuracy`` a trusted
``classification_logits`` (``Remote.using``), so a bug there costs points only once; (b) prepare a model
for classification without the student's ``prepare_for_classification``; (c) run a short trusted
finetune of a prepared model, in as many calls as the grader likes (each call stays far below the time
limit), from a head redrawn with a fixed seed. They use PyTorch's own functions and never import ``reference``;
``tests/test_reference_finetuning.py`` proves they agree with ``reference/finetuning.py``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .finetuning_tools import restore_defaults

SOLVES = ("w05_finetuning",)  # a snapshot bundle never carries this module (autograder/export/weeks.py)


def prepare_for_classification(model, num_classes):
    model.requires_grad_(False)
    width = model.tok_emb.weight.shape[1]
    model.out_head = nn.Linear(width, num_classes).to(model.tok_emb.weight.dtype)
    model.trf_blocks[len(model.trf_blocks) - 1].requires_grad_(True)
    model.final_norm.requires_grad_(True)
    return model


def classification_logits(model, input_ids):
    return model(input_ids).select(1, input_ids.shape[1] - 1)


def finetune_classifier(model, optimizer, input_ids, labels, batches):
    """Train a prepared model on the given batches (lists of row indices), one optimiser step each:
    cross-entropy of the last position's logits. Returns the loss of every step."""
    restore_defaults()
    model.train()
    losses = []
    for rows in batches:
        rows = torch.as_tensor(rows, dtype=torch.long)
        logits = model(input_ids[rows]).select(1, input_ids.shape[1] - 1)
        loss = F.cross_entropy(logits, labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


PARTS = {
    "prepare_for_classification": prepare_for_classification, "classification_logits": classification_logits,
    "finetune_classifier": finetune_classifier,
}
