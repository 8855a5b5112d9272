"""Imported once by ``grade_all``'s fork server (``multiprocessing`` preload): imports and warms up torch, pytest,
hypothesis and the engine, so the processes forked from it for each submission start warm. See ``prewarm``."""

from .prewarm import warm

warm()
