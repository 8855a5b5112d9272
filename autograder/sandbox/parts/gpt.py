"""Week 3's trusted stand-ins (the GPT model and decoding filters), built from PyTorch's own modules.

When a hidden test grades one exercise, the other exercises it builds on are swapped for these
(``Remote.using``), so a bug costs points only in the exercise where it lives: the student's
``TransformerBlock`` is graded with these ``LayerNorm``/``FeedForward``/``MultiHeadAttention``, and the
student's ``generate`` decodes from this ``GPTModel``. Later weeks (training, finetuning, LoRA) use the
same model when a student's week-3 model is broken; week 4 also uses ``RecordingGPTModel``, which notes
its forward passes.

Parameter names are the course contract (the book's), so the grader loads the reference's weights
into them unchanged. The code is deliberately not the reference (``reference/gpt.py``): it uses
``F.layer_norm``, ``F.gelu`` and ``F.scaled_dot_product_attention``, and ``tests/test_parts.py`` proves
the two agree. It is only imported for weeks whose ``Assignment.parts`` lists "gpt".
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# the weeks whose exercises this module implements: a snapshot bundle carries it only when the instructor
# publishes those weeks' solutions (autograder/export/weeks.py)
SOLVES = ("w02_attention", "w03_gpt")


class LayerNorm(nn.Module):
    def __init__(self, emb_dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class GELU(nn.Module):
    def forward(self, x):
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        width = cfg["emb_dim"]
        self.layers = nn.Sequential(nn.Linear(width, 4 * width), GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        return self.layers(x)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads:
            raise ValueError(f"d_out={d_out} is not a multiple of num_heads={num_heads}")
        self.d_in, self.d_out, self.context_length = d_in, d_out, context_length
        self.num_heads, self.head_dim, self.dropout = num_heads, d_out // num_heads, dropout
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x):
        B, T, _ = x.shape
        if T > self.context_length:
            raise ValueError(f"{T} tokens are more than context_length={self.context_length}")

        def heads(t):
            return t.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(self.W_query(x)), heads(self.W_key(x)), heads(self.W_value(x)),
                                             dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.d_out))


class TransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        width = cfg["emb_dim"]
        self.att = MultiHeadAttention(width, width, cfg["context_length"], cfg["drop_rate"], cfg["n_heads"],
                                      cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(width)
        self.norm2 = LayerNorm(width)
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class CountingEmbedding(nn.Embedding):
    """An embedding that counts the positions it has looked up: a KV cache embeds each position once."""

    positions_seen = 0

    def forward(self, idx):
        self.positions_seen += idx.numel() // max(idx.shape[0], 1) if idx.dim() > 1 else idx.numel()
        return super().forward(idx)


class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = CountingEmbedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx):
        positions = torch.arange(in_idx.shape[1], device=in_idx.device)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))
        return self.out_head(self.final_norm(self.trf_blocks(x)))


class RecordingGPTModel(GPTModel):
    """The kit's GPT model, which also notes, for every forward pass, the batch size, whether the model
    was in training mode and whether gradients were being recorded (read with ``forward_log``)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.forward_log = []

    def forward(self, in_idx):
        self.forward_log.append([int(in_idx.shape[0]), bool(self.training), bool(torch.is_grad_enabled())])
        return super().forward(in_idx)



def forward_log(model):
    """The forward passes recorded so far, as data; the log is emptied."""
    log, model.forward_log = model.forward_log, []
    return log


def top_k_filter(logits, k):
    if k >= logits.shape[-1]:
        return logits.clone()
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits, p):
    if p >= 1.0:
        return logits.clone()
    probs = logits.double().softmax(-1)
    ranked, order = probs.sort(dim=-1, descending=True)
    # mass strictly above each sorted entry; equal probabilities share the mass above their first copy
    above = ranked.cumsum(-1) - ranked
    first = torch.searchsorted(-ranked.contiguous(), -ranked.contiguous(), right=False)
    above = above.gather(-1, first)
    keep_sorted = above < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def positions_embedded(model) -> int:
    """How many positions (per sequence) the model's token embedding has looked up so far; then reset."""
    seen, model.tok_emb.positions_seen = model.tok_emb.positions_seen, 0
    return int(seen)


def generator(seed: int) -> torch.Generator:
    """A seeded random generator for the student's sampling code (the wire cannot carry one)."""
    return torch.Generator().manual_seed(int(seed))


# What a grader may build in the worker or swap in for a student's name.
PARTS = {
    "LayerNorm": LayerNorm, "GELU": GELU, "FeedForward": FeedForward, "MultiHeadAttention": MultiHeadAttention,
    "TransformerBlock": TransformerBlock, "GPTModel": GPTModel, "top_k_filter": top_k_filter,
    "top_p_filter": top_p_filter, "generator": generator, "positions_embedded": positions_embedded,
    "RecordingGPTModel": RecordingGPTModel, "forward_log": forward_log,
}
