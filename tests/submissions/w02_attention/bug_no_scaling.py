# BUG: scaled_dot_product_attention forgets the 1/sqrt(d_k) scaling of the scores.
# Must lose points: scaled_dot_product_attention, MultiHeadAttention (it calls the buggy sdpa).
# Must keep full marks: softmax, causal_mask.
# (Invisible only when d_k == 1, or when every row has a single allowed key.)
import math

import torch
import torch.nn as nn


def softmax(x, dim=-1):
    # Subtract the max for numerical stability.
    x = x - x.max(dim=dim, keepdim=True).values
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def causal_mask(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


def scaled_dot_product_attention(q, k, v, mask=None, dropout=None):
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1)  # BUG: no / math.sqrt(d_k)
    if mask is not None:
        scores = torch.where(mask, scores, float("-inf"))
        # A row with no allowed key would be softmax of all -inf = NaN: give it finite scores
        # and zero its weights afterwards (two wheres keep the gradient NaN-free too).
        has_key = mask.any(dim=-1, keepdim=True)
        scores = torch.where(has_key, scores, 0.0)
    weights = softmax(scores, dim=-1)
    if mask is not None:
        weights = torch.where(has_key, weights, 0.0)
    if dropout is not None:
        weights = dropout(weights)
    return weights @ v


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
        if T > self.context_length:
            raise ValueError(f"sequence length {T} > context_length {self.context_length}")
        q = self.W_query(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.W_key(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.W_value(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        mask = causal_mask(T).to(x.device)
        context = scaled_dot_product_attention(q, k, v, mask, dropout=self.dropout)
        context = context.transpose(1, 2).contiguous().view(B, T, self.d_out)
        return self.out_proj(context)
