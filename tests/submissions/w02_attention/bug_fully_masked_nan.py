# BUG: scaled_dot_product_attention has no special case for a query row whose mask is entirely
# False: masked_fill(-inf) then softmax gives softmax(all -inf) = NaN for that row (and NaN grads).
# Must lose points: scaled_dot_product_attention (fully masked rows only).
# Must keep full marks: softmax (course inputs always have a finite entry), causal_mask,
# scaled_dot_product_attention on masks with a True in every row, MultiHeadAttention (a causal mask
# never has an empty row).
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
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # BUG: no handling of all-False rows
    weights = softmax(scores, dim=-1)
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
