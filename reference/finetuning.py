"""Week 5 reference: finetuning a GPT for classification, instruction data, and DPO.

The trusted oracle for the finetuning week. Models follow week 3's layout and names (``tok_emb``,
``trf_blocks``, ``final_norm``, ``out_head``; see ``reference/gpt.py``). The student contract, stated in
the notebook:

* ``format_instruction(entry)``: the prompt, ``"### Instruction:\\n{instruction}"``, then
  ``"\\n\\n### Input:\\n{input}"`` only when ``input != ""``, then ``"\\n\\n### Response:\\n"``. The text a
  model is trained on is the prompt followed by the output.
* ``collate_instructions``: append one ``pad_token_id`` (the end of text) to every sequence and pad with it
  to the longest length plus one; inputs drop the last column, targets the first (shifted by one); in
  each row of the targets the first ``pad_token_id`` is kept and every later one is ``ignore_index``;
  with ``prompt_lengths``, targets at positions ``t < p - 1`` (those predicting prompt tokens 1..p-1)
  are ``ignore_index``; last, both are cut to ``allowed_max_length`` columns. int64 tensors.
* ``prepare_for_classification``: freeze everything, replace ``out_head`` with
  ``nn.Linear(emb_dim, num_classes)`` (bias included), unfreeze the last transformer block and the final
  norm; return the model.
* ``classification_logits``: the model's output at the last position, ``(B, num_classes)``.
* ``classification_accuracy``: correct predictions (argmax, lowest class on ties) over all examples of
  all batches, as a float.
* ``sequence_logprob``: per row, the mean (or with ``reduction="sum"`` the sum) of
  ``log_softmax(logits)[t, labels[t]]`` over the positions where ``mask`` is True; 0 for a row without
  any; labels where ``mask`` is False are never read (they may be -100).
* ``dpo_loss``: rewards ``beta * (policy - reference)`` for the chosen and the rejected answers; the
  loss is the batch mean of ``-logsigmoid(chosen_rewards - rejected_rewards)``; rewards are returned
  per example and detached.

``tests/test_reference_finetuning.py`` proves these against formulas written straight from
``torch.nn.functional.log_softmax``, ``gather``, ``cross_entropy`` and ``logsigmoid`` and the DPO paper.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "EOT_ID", "encode", "decode", "format_instruction", "collate_instructions", "prepare_for_classification",
    "classification_logits", "classification_accuracy", "sequence_logprob", "dpo_loss",
]

# The course's tokenizer this week: UTF-8 bytes are ids 0-255, the end of text (also the padding) is 256.
EOT_ID = 256


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def decode(ids) -> str:
    return bytes(int(i) for i in ids if int(i) < 256).decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------------------ instructions
def format_instruction(entry: dict) -> str:
    """The prompt for ``entry``: instruction, the input section only when the input is not empty, and the
    response header the model continues from."""
    prompt = "### Instruction:\n" + entry["instruction"]
    if entry["input"] != "":
        prompt += "\n\n### Input:\n" + entry["input"]
    return prompt + "\n\n### Response:\n"


def collate_instructions(batch, pad_token_id, ignore_index=-100, allowed_max_length=None, prompt_lengths=None):
    """Sequences of token ids (lists of ints, none containing ``pad_token_id``, at least one not empty)
    -> ``(inputs, targets)``, int64 tensors of shape ``(B, min(longest, allowed_max_length))``."""
    width = max(len(seq) for seq in batch) + 1  # every sequence gets its end-of-text: the longest plus one
    inputs, targets = [], []
    for row, seq in enumerate(batch):
        padded = torch.full((width,), pad_token_id, dtype=torch.long)
        padded[: len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        x, y = padded[:-1].clone(), padded[1:].clone()
        # y[t] is the token after position t. The first pad among the targets (the end of text, at index
        # len(seq) - 1, or 0 for an empty sequence) is learned; the padding after it is ignored.
        first_pad = max(len(seq) - 1, 0)
        y[first_pad + 1:] = ignore_index
        if prompt_lengths is not None:
            # tokens 1..p-1 belong to the prompt; they are the targets at positions 0..p-2
            y[: max(int(prompt_lengths[row]) - 1, 0)] = ignore_index
        inputs.append(x)
        targets.append(y)
    inputs, targets = torch.stack(inputs), torch.stack(targets)
    if allowed_max_length is not None:
        inputs, targets = inputs[:, :allowed_max_length], targets[:, :allowed_max_length]
    return inputs, targets


# ------------------------------------------------------------------------------------------ classification
def prepare_for_classification(model: nn.Module, num_classes: int) -> nn.Module:
    """A new head of ``num_classes`` outputs; only the last block, the final norm and the head train."""
    for param in model.parameters():
        param.requires_grad = False
    emb_dim = model.tok_emb.embedding_dim
    ref = model.tok_emb.weight
    model.out_head = nn.Linear(emb_dim, num_classes).to(device=ref.device, dtype=ref.dtype)
    for module in (model.trf_blocks[-1], model.final_norm):
        for param in module.parameters():
            param.requires_grad = True
    return model


def classification_logits(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` ids -> ``(B, num_classes)``: the logits at the last position (it has seen every token)."""
    return model(input_ids)[:, -1, :]


@torch.no_grad()
def classification_accuracy(model: nn.Module, loader) -> float:
    """Fraction of correctly classified examples over every batch ``(input_ids, labels)`` of ``loader``."""
    correct, total = 0, 0
    for input_ids, labels in loader:
        predicted = classification_logits(model, input_ids).argmax(dim=-1)
        correct += int((predicted == labels).sum())
        total += int(labels.numel())
    return correct / total


# ------------------------------------------------------------------------------------------ preferences
def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                     reduction: str = "mean") -> torch.Tensor:
    """``(B, T, V)`` logits, ``(B, T)`` labels and bool mask -> ``(B,)`` log-probability of the masked
    labels: their mean (default) or sum; 0 for a row whose mask is all False."""
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    mask = mask.bool()
    log_probs = torch.log_softmax(logits, dim=-1)  # stable: logits - logsumexp(logits)
    safe_labels = torch.where(mask, labels, torch.zeros_like(labels))  # -100 must never index
    picked = log_probs.gather(-1, safe_labels.unsqueeze(-1)).squeeze(-1)
    total = torch.where(mask, picked, torch.zeros_like(picked)).sum(dim=-1)
    if reduction == "sum":
        return total
    return total / mask.sum(dim=-1).clamp(min=1).to(total.dtype)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.1):
    """Direct Preference Optimization (Rafailov et al., 2023) on ``(B,)`` sequence log-probabilities.

    Returns ``(loss, chosen_rewards, rejected_rewards)``: the scalar mean loss and the ``(B,)`` implicit
    rewards ``beta * (log pi(y|x) - log pi_ref(y|x))``, detached."""
    chosen_rewards = beta * (policy_chosen - ref_chosen)
    rejected_rewards = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()  # logsigmoid: stable for any margin
    return loss, chosen_rewards.detach(), rejected_rewards.detach()
