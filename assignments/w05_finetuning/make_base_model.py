"""Retrain the small base model that week 5 finetunes (``base_model.pt``).

    python make_base_model.py             # 1200 steps, writes data/base_model.pt (10-20 minutes on a CPU)
    python make_base_model.py --steps 50  # a quick smoke run, written to data/base_model_smoke.pt

Instructor-only: it holds a working GPT and training loop (weeks 3 and 4's answers), so it lives beside
the notebook, not in ``data/``, and is not released to students.

The model is a GPT with the week-3 layout and parameter names (``tok_emb``, ``pos_emb``,
``trf_blocks.<i>.{norm1, att.{W_query, W_key, W_value, out_proj}, norm2, ff.layers.{0, 2}}``,
``final_norm``, ``out_head``), so it loads into your own ``GPTModel``. It reads bytes: token ids 0-255
are the UTF-8 bytes of the text, and id 256 (end of text) never occurs in its training text, so the base
model has never learned to stop. It is trained on ``make_data.pretraining_corpus()``: plain sentences
and quiz questions with their answers about opposites, plurals, past tenses, capitals, colours, animal
sounds, small sums, capital letters, and unlabelled reviews. The file stores the weights in float16 (half the size); load them with
``{k: v.float() for k, v in torch.load(path).items()}``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(HERE))
from make_data import pretraining_corpus  # noqa: E402

CONFIG = {"vocab_size": 257, "context_length": 192, "emb_dim": 96, "n_heads": 4, "n_layers": 4,
          "drop_rate": 0.0, "qkv_bias": False}


class Norm(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.scale, self.shift = nn.Parameter(torch.ones(width)), nn.Parameter(torch.zeros(width))

    def forward(self, h):
        return F.layer_norm(h, (h.shape[-1],), self.scale, self.shift, 1e-5)


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.W_query, self.W_key, self.W_value = (nn.Linear(width, width, bias=False) for _ in range(3))
        self.out_proj = nn.Linear(width, width)

    def forward(self, h):
        b, t, w = h.shape
        split = [f(h).reshape(b, t, self.heads, w // self.heads).transpose(1, 2)
                 for f in (self.W_query, self.W_key, self.W_value)]
        mixed = F.scaled_dot_product_attention(*split, is_causal=True)
        return self.out_proj(mixed.transpose(1, 2).reshape(b, t, w))


class MLP(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"),
                                    nn.Linear(4 * width, width))

    def forward(self, h):
        return self.layers(h)


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.norm1, self.att, self.norm2, self.ff = Norm(width), Attention(width, heads), Norm(width), MLP(width)

    def forward(self, h):
        h = h + self.att(self.norm1(h))
        return h + self.ff(self.norm2(h))


class TinyGPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        width = c["emb_dim"]
        self.tok_emb, self.pos_emb = nn.Embedding(c["vocab_size"], width), nn.Embedding(c["context_length"], width)
        self.trf_blocks = nn.Sequential(*(Block(width, c["n_heads"]) for _ in range(c["n_layers"])))
        self.final_norm = Norm(width)
        self.out_head = nn.Linear(width, c["vocab_size"], bias=False)

    def forward(self, ids):
        h = self.tok_emb(ids) + self.pos_emb(torch.arange(ids.shape[1]))
        return self.out_head(self.final_norm(self.trf_blocks(h)))


def train(steps: int, batch: int = 32, window: int = 128, peak_lr: float = 3e-3, seed: int = 0) -> TinyGPT:
    torch.manual_seed(seed)
    data = torch.tensor(list(pretraining_corpus().encode("utf-8")), dtype=torch.long)
    net = TinyGPT(CONFIG)
    opt = torch.optim.AdamW(net.parameters(), lr=peak_lr, weight_decay=0.1, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    started = time.time()
    for step in range(steps):
        warm = min(1.0, (step + 1) / 100)
        for group in opt.param_groups:  # linear warm-up, then cosine decay to 10% of the peak
            group["lr"] = peak_lr * warm * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
        starts = torch.randint(0, len(data) - window - 1, (batch,), generator=gen)
        x = torch.stack([data[s:s + window] for s in starts.tolist()])
        y = torch.stack([data[s + 1:s + window + 1] for s in starts.tolist()])
        loss = F.cross_entropy(net(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.3f}  {time.time() - started:.0f} s", flush=True)
    return net


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    steps = int(argv[argv.index("--steps") + 1]) if "--steps" in argv else 1200
    model = train(steps)
    name = "base_model.pt" if "--steps" not in argv else "base_model_smoke.pt"
    torch.save({k: v.detach().half() for k, v in model.state_dict().items()}, HERE / name)
    print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main(sys.argv[1:])
