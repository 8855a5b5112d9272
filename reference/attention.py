"""Week 2 reference: softmax, causal mask, scaled dot-product attention, multi-head attention.

This is the trusted oracle the hidden tests compare student submissions against, so it favours
being obviously correct and *total* (defined, finite, differentiable on every input, including
edge cases the course never feeds students) over being fast. Layout of ``MultiHeadAttention``
follows "Build a Large Language Model (From Scratch)", chapter 3.
"""

import math

import torch
import torch.nn as nn

__all__ = [
    "softmax",
    "causal_mask",
    "attention_weights",
    "scaled_dot_product_attention",
    "MultiHeadAttention",
]


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax of ``x`` along ``dim``.

    Entries equal to -inf get probability exactly 0. A slice that is -inf everywhere gets all
    zeros (not NaN), so the function is total; course inputs always have a finite entry.
    """
    # Shift by the max so the largest exponent is exp(0) = 1: no overflow however large x is.
    # The max is detached: softmax is shift-invariant, so the shift carries no gradient anyway,
    # and detaching keeps amax's backward out of the graph.
    x_max = x.detach().amax(dim=dim, keepdim=True)
    # An all -inf slice has max -inf, and (-inf) - (-inf) = NaN. Shift such slices by 0 instead:
    # exp(-inf - 0) = 0 everywhere, which is the answer we want after the division below.
    x_max = torch.where(torch.isfinite(x_max), x_max, torch.zeros_like(x_max))
    e = torch.exp(x - x_max)  # exp(-inf) == 0 exactly, so masked entries get exactly 0
    total = e.sum(dim=dim, keepdim=True)
    # After the shift a slice with a finite entry sums to >= 1; only an all -inf slice sums to 0.
    # Divide those by 1 (giving 0) instead of 0 (giving NaN), in the graph as well as the values.
    return e / torch.where(total > 0, total, torch.ones_like(total))


def causal_mask(T: int) -> torch.Tensor:
    """(T, T) bool mask, True where key j <= query i (a query may look at itself and the past)."""
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q @ k^T / sqrt(d_k)) with masked-out keys (mask False) given weight 0.

    q: (..., Tq, d_k), k: (..., Tk, d_k), mask: bool broadcastable to (..., Tq, Tk), True = keep.
    Returns (..., Tq, Tk). A query row whose mask is entirely False gets all-zero weights.
    """
    d_k = q.size(-1)
    # Dividing by sqrt(d_k) keeps the scores' variance ~1 for unit-variance q, k, so softmax does
    # not saturate into a near one-hot distribution as the head dimension grows.
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)
    if mask is None:
        return softmax(scores, dim=-1)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = keep), got {mask.dtype}")
    # torch.where (unlike in-place masked_fill) broadcasts both ways, so the mask may carry
    # leading dims the scores lack. Its backward sends zero gradient to the masked scores.
    scores = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
    weights = softmax(scores, dim=-1)  # total: fully masked rows already come out as 0, no NaN
    # Zero fully masked rows explicitly as well, so this rule does not hinge on softmax's edge case.
    has_key = mask.any(dim=-1, keepdim=True)
    return torch.where(has_key, weights, torch.zeros_like(weights))


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(q @ k^T / sqrt(d_k)) @ v, with an optional bool mask (True = keep).

    q: (..., Tq, d_k), k: (..., Tk, d_k), v: (..., Tk, d_v); leading dims broadcast like
    torch.matmul. Returns (..., Tq, d_v); a fully masked query row outputs zeros.
    """
    return torch.matmul(attention_weights(q, k, mask), v)


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention, laid out as in chapter 3 of the book.

    One Linear per projection (d_in -> d_out), split into ``num_heads`` heads of ``head_dim``
    features each, causal attention per head, heads concatenated again and mixed by ``out_proj``.
    """

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.d_in = d_in
        self.d_out = d_out
        self.context_length = context_length
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads  # heads share the d_out features equally
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mixes the concatenated heads
        self.dropout = nn.Dropout(dropout)  # on the attention weights, as in the book
        # Built once for the longest sequence and sliced per call. A buffer follows .to(device),
        # and persistent=False keeps it out of the state_dict (it is not a learned parameter).
        # Note: True = keep, the opposite of the book's triu "mask" buffer.
        self.register_buffer("mask", causal_mask(context_length), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        if T > self.context_length:
            raise ValueError(f"sequence length {T} exceeds context_length {self.context_length}")
        # (B, T, d_out) -> (B, T, H, head_dim) -> (B, H, T, head_dim): head h owns the feature
        # block h*head_dim:(h+1)*head_dim, and the head axis becomes a batch dim for matmul.
        q = self.W_query(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.W_key(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.W_value(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        # Same rule as scaled_dot_product_attention, with dropout between the weights and @ v.
        weights = attention_weights(q, k, self.mask[:T, :T])
        weights = self.dropout(weights)
        context = torch.matmul(weights, v)  # (B, H, T, head_dim)
        # Back to (B, T, H, head_dim); transpose leaves a non-contiguous view, which .view cannot
        # reshape, hence .contiguous() before merging the heads into d_out features.
        context = context.transpose(1, 2).contiguous().view(B, T, self.d_out)
        return self.out_proj(context)
