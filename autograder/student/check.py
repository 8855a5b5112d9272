"""Public checks: ``check("softmax")`` in a notebook, ``llmkit check notebook.ipynb`` on the command line.

Public tests live beside the notebook in ``public_tests.py`` (see ``public.py``). They are small and
instant, and only hint at what the hidden tests grade: passing them is necessary, not sufficient.
"""

from __future__ import annotations

import html
import importlib.util
import inspect
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import public


class Namespace:
    """Attribute access to a student's definitions, with a clear message for a missing name."""

    def __init__(self, names: dict):
        self._names = names

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._names:
            raise AssertionError(f"`{name}` is not defined: run the cell that defines it (or check its spelling)")
        return self._names[name]


@dataclass
class Outcome:
    exercise: str
    name: str
    passed: bool
    message: str


class Report:
    """What ``check`` returns; Jupyter shows it as a coloured list, a terminal as plain text."""

    def __init__(self, outcomes: list[Outcome]):
        self.outcomes = outcomes

    @property
    def passed(self) -> bool:
        return bool(self.outcomes) and all(o.passed for o in self.outcomes)

    def __repr__(self) -> str:
        if not self.outcomes:
            return "no public checks found for this exercise"
        lines = []
        for o in self.outcomes:
            lines.append(f"{'PASS' if o.passed else 'FAIL'}  {o.exercise}: {o.name}" + ("" if o.passed else f"\n      {o.message}"))
        n = sum(o.passed for o in self.outcomes)
        lines.append(f"{n}/{len(self.outcomes)} public checks passed")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = []
        for o in self.outcomes:
            colour, mark = ("#1a7f37", "&#10004;") if o.passed else ("#cf222e", "&#10008;")
            detail = "" if o.passed else f"<br><code>{html.escape(o.message)}</code>"
            rows.append(f"<li style='color:{colour}'>{mark} <b>{html.escape(o.exercise)}</b>: {html.escape(o.name)}{detail}</li>")
        n = sum(o.passed for o in self.outcomes)
        return f"<ul style='list-style:none;padding-left:0'>{''.join(rows)}</ul><p>{n}/{len(self.outcomes)} public checks passed</p>"


def load_public_tests(folder: Path) -> list[public.PublicTest]:
    path = folder / "public_tests.py"
    if not path.is_file():
        raise FileNotFoundError(f"no public_tests.py next to the notebook (looked in {folder})")
    public.reset()
    spec = importlib.util.spec_from_file_location(f"public_tests_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return public.collected()


def run_public_tests(names: dict, folder: Path, exercise: str | None = None) -> Report:
    ns = Namespace(names)
    outcomes = []
    for test in load_public_tests(folder):
        if exercise is not None and test.exercise != exercise:
            continue
        try:
            test.func(ns)
        except NotImplementedError:
            outcomes.append(Outcome(test.exercise, test.doc, False, "not implemented yet (NotImplementedError)"))
        except AssertionError as exc:
            outcomes.append(Outcome(test.exercise, test.doc, False, str(exc) or "check failed"))
        except Exception as exc:  # the student's code raised: show where, in their cells
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if "public_tests" not in f.filename
                      and "autograder" not in f.filename]
            where = f" (line {frames[-1].lineno} of {frames[-1].name})" if frames else ""
            outcomes.append(Outcome(test.exercise, test.doc, False, f"{type(exc).__name__}: {exc}{where}"))
        else:
            outcomes.append(Outcome(test.exercise, test.doc, True, ""))
    return Report(outcomes)


def check(exercise: str, folder: str | Path | None = None) -> Report:
    """Run the public tests of ``exercise`` against the calling notebook's definitions."""
    caller = inspect.currentframe().f_back.f_globals  # the notebook's namespace
    return run_public_tests(dict(caller), Path(folder) if folder else Path.cwd(), exercise)
