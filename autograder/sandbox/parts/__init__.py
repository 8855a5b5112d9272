"""Trusted stand-ins the worker can hold for a week's grader: one module per topic, each with a ``PARTS`` dict.

A week lists the modules it needs in ``Assignment.parts`` (e.g. ``("gpt",)``); the worker imports just
those before it drops privileges. Hidden tests then build them (``student.part("GPTModel", cfg)``) or
swap them in for a student's names while one call runs (``student.TransformerBlock.using("LayerNorm")``),
so a bug in one exercise does not cost points in the exercises built on it. Parts are written with
PyTorch's own building blocks, never by importing ``reference``, and ``tests/test_parts.py`` proves
each one equals the reference.
"""


def warm_up_optimizers() -> None:
    """torch.optim and torch.save/load import helpers lazily (cProfile, pickle machinery...), and once the
    worker drops privileges the standard library may be unreadable. Part modules whose weeks build
    optimizers or checkpoints in the worker call this when they are imported (about a second, paid only
    by those weeks)."""
    import io

    import torch

    layer = torch.nn.Linear(2, 2)
    for optimizer in (torch.optim.AdamW(layer.parameters()), torch.optim.SGD(layer.parameters(), lr=0.1)):
        layer(torch.ones(1, 2)).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    buffer = io.BytesIO()
    torch.save({"model": layer.state_dict(), "opt": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    torch.load(buffer, weights_only=True)

