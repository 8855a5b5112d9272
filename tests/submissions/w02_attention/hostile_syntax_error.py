# HOSTILE (layout): a notebook whose scaled_dot_product_attention cell does not parse. This file is
# split into notebook cells at the `# %%` lines (the test builds the notebook from exactly these three
# code cells): cell 1 defines softmax and causal_mask (correct), cell 2 defines
# scaled_dot_product_attention with a missing ':' (a syntax error), cell 3 defines MultiHeadAttention
# (correct, and self-contained: it computes attention inline with softmax and causal_mask and does NOT
# call scaled_dot_product_attention, so the broken cell costs only the function it defines).
# Must lose: scaled_dot_product_attention (10: "not defined ... these cells do not parse: cell 2,
# line <n>: expected ':'").
# Must keep full marks: softmax (5), causal_mask (3), MultiHeadAttention (10). Score 18 / 28.
# (Had MultiHeadAttention called scaled_dot_product_attention, its forward-based tests would fail
# with a NameError too, leaving it 3/10.)
# The file as a whole does not parse, on purpose.

# %% cell 1: softmax and causal_mask
import math

import torch


def softmax(x, dim=-1):
    all_neg_inf = torch.isneginf(x).all(dim=dim, keepdim=True)
    safe_x = torch.where(all_neg_inf, torch.zeros_like(x), x)
    return torch.exp(x - torch.logsumexp(safe_x, dim=dim, keepdim=True))


def causal_mask(T):
    rows = torch.arange(T).unsqueeze(1)  # query index i
    cols = torch.arange(T).unsqueeze(0)  # key index j
    return cols <= rows

# %% cell 2: scaled_dot_product_attention, with a syntax error
import math

import torch


def scaled_dot_product_attention(q, k, v, mask=None, dropout=None):
    d_k = q.shape[-1]
    scores = torch.einsum("...qd,...kd->...qk", q, k) * (1.0 / math.sqrt(d_k))
    if mask is not None  # SYNTAX ERROR: missing ':'
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    weights = torch.nan_to_num(softmax(scores, dim=-1), nan=0.0)
    if dropout is not None:
        weights = dropout(weights)
    return torch.einsum("...qk,...kd->...qd", weights, v)

# %% cell 3: MultiHeadAttention, attention computed inline
import math

import torch
import torch.nn as nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, _ = x.shape
        q = self.W_query(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.W_key(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.W_value(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~causal_mask(T), float("-inf"))  # no query row is fully masked
        weights = self.dropout(softmax(scores, dim=-1))
        context = (weights @ v).transpose(1, 2).reshape(B, T, self.d_out)
        return self.out_proj(context)
