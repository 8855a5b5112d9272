# HOSTILE (layout): the student deleted the causal_mask exercise cell, so `causal_mask` is defined
# nowhere in the notebook (not even the NotImplementedError stub). The test removes that cell from the
# released notebook and appends this code. MultiHeadAttention.forward still calls causal_mask.
# Must lose: causal_mask (3, "`causal_mask` is not defined in your notebook"), MultiHeadAttention
# forward-based tests (7: forward raises NameError: name 'causal_mask' is not defined).
# Must keep: softmax (5), scaled_dot_product_attention (10), MultiHeadAttention's 3 constructor-only
# tests (rejects_indivisible_heads x3). Score 18 / 28.
import math

import torch
import torch.nn as nn


def softmax(x, dim=-1):
    # softmax = exp(x - logsumexp(x)). A slice that is all -inf has logsumexp -inf and
    # (-inf) - (-inf) = NaN, so compute logsumexp on zeros for those slices instead:
    # exp(-inf - finite) = 0, and no NaN appears in the forward or backward pass.
    all_neg_inf = torch.isneginf(x).all(dim=dim, keepdim=True)
    safe_x = torch.where(all_neg_inf, torch.zeros_like(x), x)
    return torch.exp(x - torch.logsumexp(safe_x, dim=dim, keepdim=True))


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
