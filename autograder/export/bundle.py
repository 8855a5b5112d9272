"""The public engine subset a snapshot bundle carries, and the proof that a bundle leaks nothing.

A bundle gets a package ``llmkit_snapshot`` laid out like ``autograder`` (so the copied modules' relative
imports work unchanged): notebook extraction, the banned-API check, the sandbox (supervisor, worker, codec),
the proxy, the comparisons, and the replay. Never the reference, the hidden suites, the instructor
notebooks, or the kit's trusted stand-ins (``sandbox/parts``: correct implementations of graded exercises).
``check_no_leaks`` runs the release's own leak check (every solution line, reference line and hidden-test
line of the kit) over the finished bundle.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import nbformat

from .. import __version__
from ..assignments import all_assignments
from ..release import KIT_ROOT, find_leaks, trusted_secrets

PACKAGE = "llmkit_snapshot"
ENGINE = Path(__file__).resolve().parent.parent  # autograder/
PUBLIC_MODULES = (
    "proxy.py", "compare.py", "banned.py",
    "sandbox/__init__.py", "sandbox/codec.py", "sandbox/supervisor.py", "sandbox/worker.py",
    "export/common.py", "export/replay.py",
)
MAX_TARBALL_BYTES = 10 * 1024 * 1024  # Classroom 50's bundle cap


def write_engine(folder: Path) -> list[str]:
    """Copy the public engine into ``folder/llmkit_snapshot``; returns the files written."""
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
    (target / "__init__.py").write_text(
        f'"""The public part of llmkit {__version__} a snapshot bundle needs: extraction, sandbox, replay."""\n\n'
        f'__version__ = "{__version__}"\n')
    (target / "export" / "__init__.py").write_text('"""Replaying a recorded snapshot (see replay.py)."""\n')
    return written + ["__init__.py", "export/__init__.py"]


def check_no_leaks(folder: Path) -> None:
    """Raise if any file under ``folder`` holds a solution, reference or hidden-test line of the kit."""
    notebooks = []
    for slug, assignment in sorted(all_assignments().items()):
        path = KIT_ROOT / "assignments" / slug / assignment.notebook
        if path.is_file():
            notebooks.append(nbformat.read(path, as_version=4))
    leaks = find_leaks(folder, trusted_secrets(notebooks))
    if leaks:
        raise RuntimeError("the bundle would leak trusted content:\n  " + "\n  ".join(leaks))
    for path in folder.rglob("*"):
        parts = set(path.relative_to(folder).parts)
        if parts & {"reference", "suites", "parts", "assignments"}:
            raise RuntimeError(f"{path}: trusted folders never go into a bundle")


def tarball_size(folder: Path) -> int:
    """Size of ``folder`` as the gzipped tarball Classroom 50 publishes (its cap is 10 MB)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.tell()
