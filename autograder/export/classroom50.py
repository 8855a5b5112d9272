"""``llmkit export classroom50``: a week as a Classroom 50 per-assignment autograder.

Writes, inside the instructor's Classroom 50 configuration repository (``<classroom>/``):

    autograders/<slug>/autograder.py      the entry point Classroom 50's runner starts (c50_autograder.py)
    autograders/<slug>/autograder.json    time limit, feedback level, torch version
    autograders/<slug>/requirements.txt   what the grader installs when the runner's Python lacks it
    autograders/<slug>/snapshot/          the recorded snapshot (manifest.json, snapshot.bin)
    autograders/<slug>/llmkit_snapshot/   the public engine (bundle.py): no reference, solution or suite
    assignments.json                      the week's entry (points, runtime), added or replaced

Classroom 50 publishes the bundle as a tarball anyone can download, so the live suite cannot go there; the
snapshot can (docs/platforms.md says what it reveals). Classroom 50 slugs allow only ``a-z0-9-``: the kit's
``w02_attention`` becomes ``w02-attention`` unless ``--slug`` says otherwise.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import hypothesis
import torch

from ..assignments import get_assignment
from ..release import TEMPLATES
from ..sandbox.supervisor import Limits
from . import bundle, snapshot

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,38}$")
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_TIME_LIMIT_S = 600  # inside Classroom 50's 15-minute job, with room for installing torch
PYTHON = "3.11"


def classroom_slug(slug: str) -> str:
    return slug.lower().replace("_", "-")


def requirements() -> str:
    """The student template's pins (minus the editable student package) plus the grader's own needs."""
    keep = [ln for ln in (TEMPLATES / "requirements.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#") and not ln.startswith("-e") and not ln.startswith("torch==")]
    return ("# Installed by autograder.py when the runner's Python lacks them (torch itself comes first, CPU build).\n"
            + "\n".join(keep + [f"hypothesis=={hypothesis.__version__}"]) + "\n")


def export(slug: str, classroom: Path, *, c50_slug: str | None = None, feedback: str = "full",
           time_limit_s: int = DEFAULT_TIME_LIMIT_S, runs_on: list[str] | None = None, python: str = PYTHON,
           recorded: dict | None = None, published: tuple[str, ...] = ()) -> dict:
    assignment = get_assignment(slug)
    name = c50_slug or classroom_slug(slug)
    if not SLUG.match(name):
        raise snapshot.ExportError(f"{name!r} is not a Classroom 50 slug (a-z, 0-9 and '-', 2-39 characters)")
    for label in runs_on or []:
        if not LABEL.match(label):
            raise snapshot.ExportError(f"{label!r} is not a valid runs-on label")
    if feedback not in snapshot.FEEDBACK_LEVELS:
        raise snapshot.ExportError(f"feedback must be one of {', '.join(snapshot.FEEDBACK_LEVELS)}")
    if not 30 <= time_limit_s <= 840:
        raise snapshot.ExportError("the time limit must be between 30 s and 840 s (the job itself stops at 15 min)")
    data = recorded or snapshot.record(slug, Limits(), published=published)  # before touching the old bundle
    folder = classroom / "autograders" / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    manifest = snapshot.write(data, folder / "snapshot", feedback)
    modules, published = tuple(manifest["part_modules"]), tuple(manifest["published_solutions"])
    bundle.write_engine(folder, modules)
    shutil.copy(Path(__file__).with_name("c50_autograder.py"), folder / "autograder.py")
    (folder / "requirements.txt").write_text(requirements())
    config = {"assignment": slug, "classroom50_slug": name, "time_limit_s": time_limit_s, "feedback": feedback,
              "torch": torch.__version__.split("+")[0], "python": python}
    (folder / "autograder.json").write_text(json.dumps(config, indent=1) + "\n")
    try:
        bundle.check_no_leaks(folder, modules, published)
    except RuntimeError as exc:
        shutil.rmtree(folder)  # never leave a leaking bundle where it could be committed
        raise snapshot.ExportError(str(exc)) from None
    size = bundle.tarball_size(folder)
    if size > bundle.MAX_TARBALL_BYTES:
        raise snapshot.ExportError(f"the bundle is {size / 1e6:.1f} MB as a tarball; Classroom 50 takes 10 MB")
    entry = {"slug": name, "name": assignment.title, "mode": "individual", "autograder": "default",
             "points": manifest["max_score"], "runtime": {"python": python}}
    if runs_on:
        entry["runtime"]["runs-on"] = runs_on if len(runs_on) > 1 else runs_on[0]
    _update_manifest(classroom / "assignments.json", entry)
    return {"folder": str(folder), "entry": entry, "tarball_bytes": size, "max_score": manifest["max_score"],
            "live_max_score": manifest["live_max_score"], "not_covered": manifest["not_covered"]}


def _update_manifest(path: Path, entry: dict) -> None:
    data = json.loads(path.read_text()) if path.is_file() else {"schema": "classroom50/assignments/v1", "assignments": []}
    kept = [a for a in data.get("assignments", []) if a.get("slug") != entry["slug"]]
    old = next((a for a in data.get("assignments", []) if a.get("slug") == entry["slug"]), {})
    merged = {**old, **entry, "runtime": {**old.get("runtime", {}), **entry["runtime"]}}
    data["assignments"] = kept + [merged]
    path.write_text(json.dumps(data, indent=2) + "\n")
