"""The public engine subset a snapshot bundle carries, and the proof that a bundle leaks nothing.

A bundle gets a package ``llmkit_snapshot`` laid out like ``autograder`` (so the copied modules' relative
imports work unchanged): notebook extraction, the banned-API check, the sandbox (supervisor, worker, codec),
the proxy, the comparisons, and the replay. Never the reference, the hidden suites or the instructor
notebooks. Of the kit's trusted stand-ins (``sandbox/parts``) only the modules ``weeks.part_modules`` allows:
tools that implement no exercise, and an earlier week's implementations when its solutions are published.
``check_no_leaks`` runs the release's own leak check (every solution line, reference line and hidden-test
line of the kit, less the published weeks' solution lines) over the finished bundle.
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
from pathlib import Path

import nbformat

from .. import __version__
from ..assignments import all_assignments
from ..release import KIT_ROOT, _code_lines, find_leaks, solution_lines, trusted_secrets

PACKAGE = "llmkit_snapshot"
ENGINE = Path(__file__).resolve().parent.parent  # autograder/
PUBLIC_MODULES = (
    "proxy.py", "compare.py", "banned.py",
    "sandbox/__init__.py", "sandbox/codec.py", "sandbox/supervisor.py", "sandbox/worker.py",
    "export/common.py", "export/replay.py",
)
MAX_TARBALL_BYTES = 10 * 1024 * 1024  # Classroom 50's bundle cap


def write_engine(folder: Path, part_modules: tuple[str, ...] = ()) -> list[str]:
    """Copy the public engine, and the allowed parts modules, into ``folder/llmkit_snapshot``; returns the
    files written."""
    target = folder / PACKAGE
    if target.exists():
        shutil.rmtree(target)
    written = []
    for rel in PUBLIC_MODULES:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ENGINE / rel, target / rel)
        written.append(rel)
    for py in sorted((ENGINE / "student").glob("*.py")):
        (target / "student").mkdir(parents=True, exist_ok=True)
        shutil.copy(py, target / "student" / py.name)
        written.append(f"student/{py.name}")
    if part_modules:
        for rel in ["sandbox/parts/__init__.py"] + [f"sandbox/parts/{m}.py" for m in part_modules]:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ENGINE / rel, target / rel)
            written.append(rel)
    (target / "__init__.py").write_text(
        f'"""The public part of llmkit {__version__} a snapshot bundle needs: extraction, sandbox, replay."""\n\n'
        f'__version__ = "{__version__}"\n')
    (target / "export" / "__init__.py").write_text('"""Replaying a recorded snapshot (see replay.py)."""\n')
    return written + ["__init__.py", "export/__init__.py"]


def check_no_leaks(folder: Path, part_modules: tuple[str, ...] = (), published: tuple[str, ...] = ()) -> None:
    """Raise if any file under ``folder`` holds a solution, reference or hidden-test line of the kit, or a
    parts module other than ``part_modules``. The ``published`` weeks' solution lines, and the lines of the
    reference modules those weeks introduced, are allowed (the instructor has published those solutions)."""
    notebooks = {}
    for slug, assignment in sorted(all_assignments().items()):
        path = KIT_ROOT / "assignments" / slug / assignment.notebook
        if path.is_file():
            notebooks[slug] = nbformat.read(path, as_version=4)
    secrets = trusted_secrets(list(notebooks.values()))
    secrets["solution"] -= set().union(set(), *[solution_lines(nb) for s, nb in notebooks.items() if s in published])
    secrets["reference"] -= set().union(set(), *[_code_lines(KIT_ROOT / "reference" / f"{m}.py")
                                                 for m in _reference_modules_of(published)])
    # A carried parts module implements only published weeks (its SOLVES, checked by tests/test_parts.py), but
    # weeks 4-6 keep a pasted week-3 GPT in their solution regions, so its lines may equal such a line.
    leaks = [leak for leak in find_leaks(folder, secrets)
             if not (leak.startswith(f"{PACKAGE}/sandbox/parts/") and ": solution line " in leak)]
    if leaks:
        raise RuntimeError("the bundle would leak trusted content:\n  " + "\n  ".join(leaks))
    allowed = {"__init__.py"} | {f"{m}.py" for m in part_modules}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).parts
        if set(rel) & {"reference", "suites", "assignments"}:
            raise RuntimeError(f"{path}: trusted folders never go into a bundle")
        if "parts" in rel and path.is_file() and (rel[-2] != "parts" or rel[-1] not in allowed):
            raise RuntimeError(f"{path}: only the parts modules {sorted(allowed)} may go into this bundle")


def _reference_modules_of(weeks: tuple[str, ...]) -> set[str]:
    """The reference modules a week introduced: those its hidden suite imports and no earlier week's does."""
    seen: set[str] = set()
    owned: set[str] = set()
    for slug in sorted(all_assignments()):
        text = "\n".join(p.read_text() for p in (ENGINE / "suites" / slug).rglob("*.py"))
        mine = set(re.findall(r"^from reference import (\w+)", text, re.M)) - seen
        seen |= mine
        if slug in weeks:
            owned |= mine
    return owned


def tarball(folder: Path) -> bytes:
    """``folder`` as the gzipped tarball Classroom 50 publishes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


def tarball_size(folder: Path) -> int:
    """Size of ``folder`` as the tarball Classroom 50 publishes (its cap is 10 MB)."""
    return len(tarball(folder))
