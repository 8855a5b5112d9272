"""Shared by the per-week grading tables (``tests/test_grading_wNN.py``): an example submission as a notebook
built on the week's own released stub, and a grade through the CLI, as a student's or a TA's run does it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from autograder.assignments import get_assignment
from autograder.demo import example_notebook
from export_support import week_release

ROOT = Path(__file__).resolve().parents[1]


def submission(slug: str, name: str, folder: Path) -> Path:
    """``solution`` (the instructor's notebook), ``stub`` (the released one, this week released alone), or the
    example submission ``tests/submissions/<slug>/<name>.py`` pasted into the stub."""
    notebook = get_assignment(slug).notebook
    if name == "solution":
        return ROOT / "assignments" / slug / notebook
    stub = week_release(slug) / slug / notebook
    if name == "stub":
        return stub
    return example_notebook(stub, ROOT / "tests" / "submissions" / slug / f"{name}.py", folder / f"{name}.ipynb")


def grade_cli(notebook: Path, slug: str, out: Path, *args: str) -> dict:
    """``llmkit grade --format json`` in a fresh process; the result.json it writes."""
    proc = subprocess.run([sys.executable, "-m", "autograder.cli", "grade", str(notebook), "-a", slug, "--out",
                           str(out), "--format", "json", *args], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "result.json").read_text())
