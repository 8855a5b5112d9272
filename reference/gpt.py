"""Week 3 reference: the GPT model and text generation.

The trusted oracle for the GPT week (and the base model of the later weeks). Layout and state-dict
names follow "Build a Large Language Model (From Scratch)", chapter 4, so one set of weights loads
into the student's model and this one:

    tok_emb, pos_emb, drop_emb, trf_blocks.<i>.{norm1, att, norm2, ff, drop_shortcut}, final_norm, out_head
    att = week 2's MultiHeadAttention (W_query, W_key, W_value, out_proj)
    ff.layers = Sequential(Linear(d, 4d), GELU(), Linear(4d, d)); LayerNorm has ``scale`` and ``shift``

``tests/test_reference_gpt.py`` proves it equals Hugging Face's ``GPT2LMHeadModel`` with mapped weights.
Decoding rules (the student contract, stated in the notebook):

* ``generate``: crop to the last ``context_size`` tokens, take the last position's logits; temperature
  0 is greedy (argmax, lowest id on ties); otherwise divide by the temperature, then top-k, then top-p,
  then sample from the softmax with ``torch.multinomial(..., generator=generator)``.
* ``top_k_filter``: keep every logit >= the k-th largest (ties at the threshold are all kept).
* ``top_p_filter``: keep token j iff the probability of the tokens strictly more likely than j is < p
  (the smallest nucleus reaching p, with ties at its edge all kept); p >= 1 keeps everything.
* ``eos_id``: generation stops when the sampled token is ``eos_id``; it is not appended.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from reference.attention import MultiHeadAttention

__all__ = [
    "GPT_CONFIG_124M", "LayerNorm", "GELU", "FeedForward", "TransformerBlock", "GPTModel",
    "count_parameters", "top_k_filter", "top_p_filter", "next_token_logits", "generate", "generate_cached",
]

# GPT-2 small ("124M"). Without weight tying the model has 163,009,536 parameters (see the notebook).
GPT_CONFIG_124M = {
    "vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
    "drop_rate": 0.1, "qkv_bias": False,
}


class LayerNorm(nn.Module):
    """Normalise the last dim to mean 0 and (biased) variance 1, then scale and shift."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased: divide by n, as GPT-2 does
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(nn.Module):
    """GELU, tanh approximation (GPT-2's "gelu_new")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class FeedForward(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        d = cfg["emb_dim"]
        self.layers = nn.Sequential(nn.Linear(d, 4 * d), GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + drop(att(norm1(x))), then x + drop(ff(norm2(x)))."""

    def __init__(self, cfg: dict):
        super().__init__()
        d = cfg["emb_dim"]
        self.att = MultiHeadAttention(d, d, cfg["context_length"], cfg["drop_rate"], cfg["n_heads"], cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(d)
        self.norm2 = LayerNorm(d)
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class GPTModel(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = dict(cfg)
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        _, T = in_idx.shape
        if T > self.cfg["context_length"]:
            raise ValueError(f"sequence length {T} exceeds context_length {self.cfg['context_length']}")
        pos = torch.arange(T, device=in_idx.device)  # positions 0..T-1 only: sliced to the sequence
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(pos))
        return self.out_head(self.final_norm(self.trf_blocks(x)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------- decoding
def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits with every entry below the k-th largest of its row set to -inf (ties at it all kept)."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k >= logits.size(-1):
        return logits.clone()
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return torch.where(logits < kth, torch.full_like(logits, float("-inf")), logits)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep token j iff the total probability of the tokens strictly more likely than j is < p."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p!r}")
    if p >= 1.0:
        return logits.clone()
    probs = torch.softmax(logits.double(), dim=-1)
    # mass_above[..., j] = sum of probs[..., i] over i with probs[i] > probs[j]; O(V^2), fine for an oracle.
    greater = probs.unsqueeze(-2) > probs.unsqueeze(-1)  # [..., j, i]: is token i more likely than j?
    mass_above = (greater * probs.unsqueeze(-2)).sum(-1)
    return torch.where(mass_above < p, logits, torch.full_like(logits, float("-inf")))


def _pick(logits: torch.Tensor, temperature: float, top_k, top_p, generator) -> torch.Tensor:
    """(B, V) logits -> (B, 1) next token ids under the decoding rules above."""
    if temperature == 0.0:
        return torch.argmax(logits, dim=-1, keepdim=True)  # first (lowest) id on ties
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


@torch.no_grad()
def next_token_logits(model: nn.Module, idx: torch.Tensor, context_size: int) -> torch.Tensor:
    """The logits generate() decodes from: the model on the last ``context_size`` tokens, last position."""
    return model(idx[:, -context_size:])[:, -1, :]


@torch.no_grad()
def generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, top_p=None, eos_id=None,
             generator=None):
    for _ in range(max_new_tokens):
        nxt = _pick(next_token_logits(model, idx, context_size), temperature, top_k, top_p, generator)
        if eos_id is not None and bool((nxt == eos_id).all()):
            break
        idx = torch.cat([idx, nxt.to(idx.dtype)], dim=1)
    return idx


# ------------------------------------------------------------------------------------------- KV cache
def _cached_forward(model: GPTModel, new_idx: torch.Tensor, cache: list, start: int) -> torch.Tensor:
    """Run ``new_idx`` (tokens at positions start.., B x n) through the model, appending each layer's
    keys and values to ``cache``; returns the logits of the new positions."""
    B, n = new_idx.shape
    pos = torch.arange(start, start + n, device=new_idx.device)
    x = model.drop_emb(model.tok_emb(new_idx) + model.pos_emb(pos))
    for layer, block in enumerate(model.trf_blocks):
        att = block.att
        h = block.norm1(x)
        split = lambda t: t.view(B, n, att.num_heads, att.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(att.W_query(h)), split(att.W_key(h)), split(att.W_value(h))
        if len(cache) > layer:
            k = torch.cat([cache[layer][0], k], dim=2)
            v = torch.cat([cache[layer][1], v], dim=2)
            cache[layer] = (k, v)
        else:
            cache.append((k, v))
        total = k.size(2)
        # new query i sits at absolute position start + i and may see keys 0..start + i
        keep = torch.arange(total)[None, :] <= (start + torch.arange(n))[:, None]
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(att.head_dim)
        scores = scores.masked_fill(~keep, float("-inf"))
        ctx = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(B, n, att.num_heads * att.head_dim)
        x = x + block.drop_shortcut(att.out_proj(ctx))
        x = x + block.drop_shortcut(block.ff(block.norm2(x)))
    return model.out_head(model.final_norm(x))


@torch.no_grad()
def generate_cached(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, top_p=None,
                    eos_id=None, generator=None):
    """``generate`` with a KV cache. Once the sequence outgrows ``context_size`` the window slides,
    every position shifts, and the cache is rebuilt from the cropped window (what generate computes)."""
    cache: list = []
    window = idx[:, -context_size:]
    logits = _cached_forward(model, window, cache, 0)[:, -1, :]
    length = window.size(1)
    for step in range(max_new_tokens):
        nxt = _pick(logits, temperature, top_k, top_p, generator)
        if eos_id is not None and bool((nxt == eos_id).all()):
            break
        idx = torch.cat([idx, nxt.to(idx.dtype)], dim=1)
        if step == max_new_tokens - 1:
            break
        if length < context_size:  # room left: one new position through the cache
            logits = _cached_forward(model, nxt, cache, length)[:, -1, :]
            length += 1
        else:  # full: positions shift, so start again from the cropped window
            cache = []
            window = idx[:, -context_size:]
            logits = _cached_forward(model, window, cache, 0)[:, -1, :]
    return idx
