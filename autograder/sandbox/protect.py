"""Hide the trusted files from the unprivileged worker user.

When the grader runs as root (a CI container), student code runs as ``nobody``. Files are usually
world-readable, so dropping privileges alone would still let student code read the reference, the
hidden tests or the instructor's notebooks. Removing "other" permissions from those folders closes
that; root (the grader) is unaffected. Nothing is done when not root: there is no other user to hide
from, and the result says so.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import autograder

KIT_ROOT = Path(autograder.__file__).resolve().parent.parent
SECRET_IN_KIT = ("reference", "assignments", "tests", ".git", "autograder/suites", "build")


def secret_paths() -> list[Path]:
    paths = []
    if (KIT_ROOT / "pyproject.toml").is_file():  # a checkout (editable install)
        paths += [KIT_ROOT / p for p in SECRET_IN_KIT]
    for package in ("reference", "autograder.suites"):  # wherever they were installed
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            paths += [Path(p) for p in spec.submodule_search_locations]
    return [p for p in dict.fromkeys(paths) if p.exists()]


def protect_trusted_files() -> list[str]:
    """As root, make the trusted folders unreadable to other users; returns what was protected."""
    if os.getuid() != 0:
        return []
    done = []
    for path in secret_paths():
        mode = path.stat().st_mode
        os.chmod(path, mode & ~0o007)
        done.append(str(path))
    return done
