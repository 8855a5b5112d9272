"""Shared by the export tests: one recording of week 2 per test run (recording grades the solution, ~20 s),
the week-2 student template, and JSON schemas written from the platforms' documented rules."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEEK = "w02_attention"  # the fastest week to grade
NOTEBOOK = "attention.ipynb"
SOLUTION = ROOT / "assignments" / WEEK / NOTEBOOK


@functools.lru_cache(maxsize=None)
def recorded(slug: str = WEEK) -> dict:
    from autograder.export import snapshot

    return snapshot.record(slug)


@functools.lru_cache(maxsize=None)
def week_release(slug: str = WEEK) -> Path:
    """The student template for one week (another week still being written cannot break it)."""
    from autograder.gradebook.synthetic import build_week_release

    out = Path(tempfile.mkdtemp(prefix="llmkit-export-release-")) / "release"
    return build_week_release([slug], out)


def student_checkout(tmp: Path, notebook: Path | None, slug: str = WEEK) -> Path:
    """A student's repository: the template, with ``notebook`` as the week's notebook (None: the stub)."""
    from autograder.assignments import get_assignment

    repo = tmp / "student"
    shutil.copytree(week_release(slug), repo)
    if notebook is not None:
        shutil.copy(notebook, repo / slug / get_assignment(slug).notebook)
    return repo


# Classroom 50's result.json, from its rules: exactly these top-level keys; integer scores; each test
# {"test-name", "passed", "score" >= 0, "max-score" >= score} plus an optional "message".
CLASSROOM50_RESULT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["schema", "classroom", "assignment", "submission", "commit", "release", "review", "datetime",
                 "score", "max-score", "tests"],
    "properties": {
        "schema": {"const": "classroom50/result/v1"},
        "classroom": {"type": "string"}, "assignment": {"type": "string"}, "submission": {"type": "string"},
        "commit": {"type": "string"}, "release": {"type": "string"}, "review": {"type": "string"},
        "datetime": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"},
        "score": {"type": "integer", "minimum": 0},
        "max-score": {"type": "integer", "minimum": 0},
        "tests": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["test-name", "passed", "score", "max-score"],
            "properties": {"test-name": {"type": "string", "minLength": 1}, "passed": {"type": "boolean"},
                           "score": {"type": "integer", "minimum": 0}, "max-score": {"type": "integer", "minimum": 0},
                           "message": {"type": "string"}}}},
    },
}

# Classroom 50's assignments.json entry, as far as the kit writes it (slug rule, runtime block).
CLASSROOM50_ENTRY = {
    "type": "object",
    "required": ["slug", "name", "mode", "autograder", "points", "runtime"],
    "properties": {
        "slug": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,38}$"},
        "name": {"type": "string", "minLength": 1},
        "mode": {"enum": ["individual", "group"]},
        "autograder": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,38}$"},
        "points": {"type": "integer", "minimum": 0},
        "runtime": {"type": "object", "additionalProperties": False, "properties": {
            "python": {"type": "string", "pattern": "^[A-Za-z0-9._+-]{1,32}$"},
            "runs-on": {"oneOf": [
                {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                {"type": "array", "minItems": 1, "maxItems": 10,
                 "items": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}}]}}},
    },
}

# Gradescope's results.json: score, and tests with name, score, max_score, status, output, visibility.
GRADESCOPE_RESULTS = {
    "type": "object",
    "required": ["tests"],
    "properties": {
        "score": {"type": "number", "minimum": 0},
        "tests": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["name"],
            "properties": {"name": {"type": "string"}, "score": {"type": "number"}, "max_score": {"type": "number"},
                           "status": {"enum": ["passed", "failed"]}, "output": {"type": "string"},
                           "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]}}}},
    },
}


def schema_errors(data, schema) -> list[str]:
    from jsonschema import Draft202012Validator

    return [f"{list(e.path)}: {e.message}" for e in Draft202012Validator(schema).iter_errors(data)]
