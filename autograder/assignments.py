"""What the engine knows about each week: its notebook, exercises, banned APIs and written questions.

Each hidden suite package (``autograder/suites/<slug>/``) defines ``ASSIGNMENT``; this module finds them.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Exercise:
    name: str  # the exercise id used in markers, check cells and reports
    defines: str  # the top-level name the student must define
    banned: tuple[str, ...] = ()  # API names that may not appear in the definition


@dataclass(frozen=True)
class WrittenQuestion:
    grade_id: str  # nbgrader grade_id of the answer cell
    points: int
    prompt: str


@dataclass(frozen=True)
class Assignment:
    slug: str
    title: str
    notebook: str  # file name inside assignments/<slug>/ and release/<slug>/
    exercises: tuple[Exercise, ...]
    written: tuple[WrittenQuestion, ...] = field(default_factory=tuple)
    # Modules of ``sandbox/parts/`` (trusted stand-ins, e.g. "gpt") the worker loads, for tests that swap
    # them in for a student's earlier exercises or run student code on a trusted model.
    parts: tuple[str, ...] = ()

    def exercise(self, name: str) -> Exercise:
        for ex in self.exercises:
            if ex.name == name:
                return ex
        raise KeyError(name)


class UnknownAssignment(LookupError):
    pass


def all_assignments() -> dict[str, Assignment]:
    from . import suites

    found = {}
    for info in pkgutil.iter_modules(suites.__path__):
        module = importlib.import_module(f"{suites.__name__}.{info.name}")
        spec = getattr(module, "ASSIGNMENT", None)
        if isinstance(spec, Assignment):
            found[spec.slug] = spec
    return found


def get_assignment(slug: str) -> Assignment:
    found = all_assignments()
    if slug not in found:
        raise UnknownAssignment(f"unknown assignment {slug!r}; known: {', '.join(sorted(found)) or 'none'}")
    return found[slug]
