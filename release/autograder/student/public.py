"""Registry for public tests: the small, instant checks shipped to students beside each notebook.

A week's ``public_tests.py`` decorates plain functions::

    @public_test("softmax")
    def rows_sum_to_one(ns):
        p = ns.softmax(torch.tensor([[1.0, 2.0]]))
        assert torch.allclose(p.sum(-1), torch.ones(1)), "each row must sum to 1"

``ns`` gives attribute access to the student's definitions (the notebook's globals). A test passes when
it returns without raising; the ``AssertionError`` message is what the student sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class PublicTest:
    exercise: str
    name: str
    func: Callable
    doc: str


_REGISTRY: list[PublicTest] = []


def public_test(exercise: str):
    """Register the decorated function as a public test of ``exercise``."""

    def decorate(func):
        doc = (func.__doc__ or "").strip().splitlines()
        _REGISTRY.append(PublicTest(exercise, func.__name__, func, doc[0] if doc else func.__name__))
        return func

    return decorate


def collected() -> list[PublicTest]:
    return list(_REGISTRY)


def reset() -> None:
    _REGISTRY.clear()
