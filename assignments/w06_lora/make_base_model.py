"""Pretrain the small base model that week 6 finetunes with LoRA: writes ``data/base_model.pt``.

    python assignments/w06_lora/make_base_model.py          # from the repository root (about 10 minutes on 1 core)

Not shipped to students (it imports the kit's reference GPT); the notebook only loads the result. The
model is the week-3 GPT (the book's layer names), character-level, trained with AdamW on
``data/stories.txt`` alone: it has read about the 40 people of the course's little world, but it has
never seen a question. Deterministic on one CPU thread with the pinned torch.

The checkpoint is a plain dict readable with ``torch.load(..., weights_only=True)``:
``config`` (the GPT config), ``chars`` (the vocabulary, id = position in the string), ``model``
(the state dict, float32) and ``history`` (step and training loss every 100 steps).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from reference.gpt import GPTModel  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
CONFIG = {"vocab_size": 0, "context_length": 64, "emb_dim": 96, "n_heads": 4, "n_layers": 3, "drop_rate": 0.0,
          "qkv_bias": False}
STEPS, BATCH, LR, WARMUP = 3000, 32, 3e-3, 100


def vocabulary() -> str:
    text = (DATA / "stories.txt").read_text(encoding="utf-8")
    qa = [json.loads(line) for line in (DATA / "qa.jsonl").read_text(encoding="utf-8").splitlines()]
    for row in qa:
        text += f"Q: {row['question']}\nA: {row['answer']}\n"
    return "".join(sorted(set(text)))


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    chars = vocabulary()
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in (DATA / "stories.txt").read_text(encoding="utf-8")])
    cfg = CONFIG | {"vocab_size": len(chars)}
    model = GPTModel(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=LR,
                            betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(1)
    T = cfg["context_length"]
    history, started = [], time.time()
    for step in range(STEPS):
        lr = LR * min(1.0, (step + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * step / STEPS))
        for group in opt.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(data) - T - 1, (BATCH,), generator=gen)
        x = torch.stack([data[s:s + T] for s in starts])
        y = torch.stack([data[s + 1:s + T + 1] for s in starts])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == STEPS - 1:
            history.append([step, round(loss.item(), 4)])
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - started:.0f}s", flush=True)
    state = {n: t.detach().clone().contiguous() for n, t in model.state_dict().items()}
    torch.save({"config": cfg, "chars": chars, "model": state, "history": history}, DATA / "base_model.pt")
    print(f"wrote {DATA / 'base_model.pt'}")


if __name__ == "__main__":
    main()
