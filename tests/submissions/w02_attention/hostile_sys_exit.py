# HOSTILE: softmax calls sys.exit(0) instead of returning; everything else is correct_alternative.py
# (scaled_dot_product_attention calls softmax, MultiHeadAttention.forward calls
# scaled_dot_product_attention). SystemExit must not stop grading: it is reported as "tried to stop
# the program".
# Must lose: softmax (5), scaled_dot_product_attention (10), MultiHeadAttention forward-based tests
# (7: matches_reference 4, gradients 2, is_causal 1).
# Must keep: causal_mask (3), and MultiHeadAttention's 3 constructor-only tests
# (rejects_indivisible_heads x3: the constructor never calls softmax). Score 6 / 28.
import math
import sys

import torch
import torch.nn as nn


def softmax(x, dim=-1):
    sys.exit(0)  # HOSTILE: "stop the program" from inside a graded function


def causal_mask(T):
    rows = torch.arange(T).unsqueeze(1)  # query index i
    cols = torch.arange(T).unsqueeze(0)  # key index j
    return cols <= rows


def scaled_dot_product_attention(q, k, v, mask=None, dropout=None):
    d_k = q.shape[-1]
    scores = torch.einsum("...qd,...kd->...qk", q, k) * (1.0 / math.sqrt(d_k))
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    weights = softmax(scores, dim=-1)
    # Rows with no allowed key: softmax above already gives 0 there; nan_to_num is belt and braces.
    weights = torch.nan_to_num(weights, nan=0.0)
    if dropout is not None:
        weights = dropout(weights)
    return torch.einsum("...qk,...kd->...qd", weights, v)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, f"d_out ({d_out}) must be divisible by num_heads ({num_heads})"
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
        if T > self.context_length:
            raise ValueError(f"sequence length {T} > context_length {self.context_length}")
        queries, keys, values = self.W_query(x), self.W_key(x), self.W_value(x)
        mask = causal_mask(T).to(x.device)
        outputs = []
        for h in range(self.num_heads):
            block = slice(h * self.head_dim, (h + 1) * self.head_dim)  # head h's features
            outputs.append(
                scaled_dot_product_attention(
                    queries[:, :, block], keys[:, :, block], values[:, :, block], mask, dropout=self.dropout
                )
            )
        return self.out_proj(torch.cat(outputs, dim=-1))
