import math

import torch
import torch.nn as nn


class MultiHeadAttention(nn.Module):
    # week 2, pasted (einsum form)
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0
        self.num_heads, self.head_dim, self.d_out = num_heads, d_out // num_heads, d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("upper", torch.triu(torch.ones(context_length, context_length), 1).bool())

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (w(x).reshape(b, t, self.num_heads, self.head_dim) for w in (self.W_query, self.W_key, self.W_value))
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) / self.head_dim ** 0.5
        s = s.masked_fill(self.upper[:t, :t], -torch.inf)
        a = self.dropout(torch.softmax(s, dim=-1))
        return self.out_proj(torch.einsum("bhqk,bkhd->bqhd", a, v).reshape(b, t, self.d_out))


class LayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        centred = x - x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return centred * torch.rsqrt(var + self.eps) * self.scale + self.shift


class GELU(nn.Module):
    def forward(self, x):
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))
        return x * 0.5 * (1 + torch.tanh(inner))


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        width = cfg["emb_dim"]
        self.layers = nn.Sequential(nn.Linear(width, width * 4), GELU(), nn.Linear(width * 4, width))

    def forward(self, x):
        return self.layers(x)


class TransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.att = MultiHeadAttention(d_in=cfg["emb_dim"], d_out=cfg["emb_dim"], context_length=cfg["context_length"],
                                      dropout=cfg["drop_rate"], num_heads=cfg["n_heads"], qkv_bias=cfg["qkv_bias"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.ff = FeedForward(cfg)
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        shortcut = x
        x = self.drop_shortcut(self.att(self.norm1(x))) + shortcut
        shortcut = x
        return self.drop_shortcut(self.ff(self.norm2(x))) + shortcut


class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg["n_layers"]))
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx):
        positions = torch.arange(in_idx.shape[-1], device=in_idx.device)
        h = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions)[None])
        for block in self.trf_blocks:
            h = block(h)
        return self.out_head(self.final_norm(h))


def top_k_filter(logits, k):
    if k < 1:
        raise ValueError("k must be >= 1")
    k = min(k, logits.shape[-1])
    threshold = logits.sort(dim=-1, descending=True).values[..., k - 1:k]
    return torch.where(logits >= threshold, logits, torch.tensor(float("-inf")))


def top_p_filter(logits, p):
    if not (0 < p <= 1):
        raise ValueError("p must be in (0, 1]")
    if p == 1:
        return logits.clone()
    probs = torch.softmax(logits, dim=-1)
    out = logits.clone()
    for row in range(logits.shape[0]):
        for j in range(logits.shape[1]):
            above = probs[row][probs[row] > probs[row, j]].sum()
            if above >= p:
                out[row, j] = float("-inf")
    return out


def _choose(logits, temperature, top_k, top_p, generator):
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)


def generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, top_p=None, eos_id=None,
             generator=None):
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx[:, -context_size:])[:, -1, :]
        nxt = _choose(logits, temperature, top_k, top_p, generator)
        idx = torch.cat((idx, nxt), dim=1)
        if eos_id is not None and nxt.item() == eos_id:
            break  # appends eos, then stops: accepted
    return idx


def _step(model, ids, start, caches):
    n = ids.shape[1]
    h = model.tok_emb(ids) + model.pos_emb(torch.arange(start, start + n))
    h = model.drop_emb(h)
    for i, block in enumerate(model.trf_blocks):
        att = block.att
        y = block.norm1(h)
        b = y.shape[0]
        q, k, v = (lin(y).view(b, n, att.num_heads, att.head_dim).transpose(1, 2)
                   for lin in (att.W_query, att.W_key, att.W_value))
        if i in caches:
            k = torch.cat((caches[i][0], k), 2)
            v = torch.cat((caches[i][1], v), 2)
        caches[i] = (k, v)
        s = q @ k.transpose(2, 3) / math.sqrt(att.head_dim)
        allowed = torch.arange(k.shape[2])[None, :] <= torch.arange(start, start + n)[:, None]
        s = s.masked_fill(~allowed, float("-inf"))
        o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, n, -1)
        h = h + block.drop_shortcut(att.out_proj(o))
        h = h + block.drop_shortcut(block.ff(block.norm2(h)))
    return model.out_head(model.final_norm(h))[:, -1, :]


def generate_cached(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, top_p=None, eos_id=None,
                    generator=None):
    with torch.no_grad():
        caches = {}
        logits = _step(model, idx[:, -context_size:], 0, caches)
        filled = min(idx.shape[1], context_size)
        for i in range(max_new_tokens):
            nxt = _choose(logits, temperature, top_k, top_p, generator)
            if eos_id is not None and nxt.item() == eos_id:
                break
            idx = torch.cat((idx, nxt), dim=1)
            if i + 1 == max_new_tokens:
                break
            if filled < context_size:
                logits = _step(model, nxt, filled, caches)
                filled += 1
            else:
                caches = {}
                logits = _step(model, idx[:, -context_size:], 0, caches)
    return idx
