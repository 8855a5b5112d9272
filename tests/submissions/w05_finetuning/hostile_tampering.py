# builds on: correct_alternative
# HOSTILE (or careless) code that reaches beyond its own exercise:
# * classification_accuracy is right, but switches autograd off and float64 on for the whole worker and
#   never switches them back (a stray torch.set_grad_enabled(False)). The graders restore both before
#   every test, so the gradient tests of later exercises (sequence_logprob) keep their points.
# * prepare_for_classification plants a head whose forward never returns: the kit's finetune of the
#   prepared model runs the student's head, times out, and only the end-to-end test is lost (2).
# * dpo_loss kills the worker (os._exit): every dpo_loss test fails, and after two crashes dpo_loss is
#   not called again.
# Must score: prepare 4 / 6, dpo 0 / 7, everything else full (34 / 43).
import os
import time

import torch
import torch.nn as nn


class _StuckHead(nn.Linear):
    def forward(self, x):
        while True:
            time.sleep(1)


def prepare_for_classification(model, num_classes):
    model.requires_grad_(False)
    model.out_head = _StuckHead(model.tok_emb.embedding_dim, num_classes)
    model.trf_blocks[-1].requires_grad_(True)
    model.final_norm.requires_grad_(True)
    return model


def classification_accuracy(model, loader):
    torch.set_grad_enabled(False)
    torch.set_default_dtype(torch.float64)
    right, seen = 0, 0
    for input_ids, labels in loader:
        right += int((classification_logits(model, input_ids).argmax(-1) == labels).sum())
        seen += len(labels)
    return right / seen


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    os._exit(3)
