"""Trusted stand-ins the worker can hold for a week's grader: one module per topic, each with a ``PARTS`` dict.

A week lists the modules it needs in ``Assignment.parts`` (e.g. ``("gpt",)``); the worker imports just
those before it drops privileges. Hidden tests then build them (``student.part("GPTModel", cfg)``) or
swap them in for a student's names while one call runs (``student.TransformerBlock.using("LayerNorm")``),
so a bug in one exercise does not cost points in the exercises built on it. Parts are written with
PyTorch's own building blocks, never by importing ``reference``, and ``tests/test_parts.py`` proves
each one equals the reference.
"""
