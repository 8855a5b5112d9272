# builds on: correct_alternative
# BUG: the head is replaced but nothing is frozen: the whole model trains.
# Must lose: prepare_for_classification's trainable-set test (2) and the end-to-end test (2), where
# finetuning changes the frozen layers. Must keep: the new head (1), pretrained weights kept (1): 2 / 6,
# and every other exercise (39 / 43).
import torch.nn as nn


def prepare_for_classification(model, num_classes):
    model.out_head = nn.Linear(model.tok_emb.embedding_dim, num_classes)  # BUG: no freezing at all
    return model
