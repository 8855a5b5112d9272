# BUG: MultiHeadAttention splits heads as .view(B, T, head_dim, num_heads) and permutes to
# (B, num_heads, T, head_dim): shapes are right, but head h gets features h, h+H, h+2H, ... instead
# of the block h*head_dim:(h+1)*head_dim, while the merge back assumes blocks. Values are wrong.
# Must lose points: MultiHeadAttention (with num_heads > 1 and head_dim > 1).
# Must keep full marks: softmax, causal_mask, scaled_dot_product_attention.
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
        q = self.W_query(x).view(B, T, self.head_dim, self.num_heads).permute(0, 3, 1, 2)  # BUG
        k = self.W_key(x).view(B, T, self.head_dim, self.num_heads).permute(0, 3, 1, 2)  # BUG
        v = self.W_value(x).view(B, T, self.head_dim, self.num_heads).permute(0, 3, 1, 2)  # BUG
        mask = causal_mask(T).to(x.device)
        context = scaled_dot_product_attention(q, k, v, mask, dropout=self.dropout)
        context = context.transpose(1, 2).contiguous().view(B, T, self.d_out)
        return self.out_proj(context)
