"""A generated class: local git repositories laid out as GitHub Classroom makes them (tests and the benchmark).

Each student repository starts as GitHub Classroom starts it, with the released student template as its
first commit ("Initial commit", dated ``start``), then one commit that replaces the week's notebook with the
student's work. The work is one of the kit's own example submissions (``tests/submissions/<week>/``): the
instructor's solution, the untouched stub, correct alternatives, typical bugs, and broken or hostile
notebooks. Files with ``# %%`` cell markers become one notebook cell per marker; any other example is appended
to the stub as a last code cell, as a student would fill it in.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..release import KIT_ROOT

EXAMPLES = KIT_ROOT / "tests" / "submissions"
BROKEN = ("stub", "corrupt", "missing")  # built here, not from an example file


def build_week_release(slugs: list[str], out: Path) -> Path:
    """The student template for just these weeks (a week another author is still writing cannot break it)."""
    import tempfile

    from ..release import build_release

    with tempfile.TemporaryDirectory(prefix="llmkit-release-src-") as tmp:
        for slug in slugs:
            shutil.copytree(KIT_ROOT / "assignments" / slug, Path(tmp) / slug,
                            ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        build_release(Path(tmp), out)
    return out


def kinds(slug: str) -> list[str]:
    """Every kind of submission available for a week: solution, stub, corrupt, missing and the example files."""
    files = sorted(p.stem for p in (EXAMPLES / slug).glob("*.py")) if (EXAMPLES / slug).is_dir() else []
    return ["solution", *BROKEN, *files]


def default_mix(slug: str) -> list[str]:
    """A class as it looks: mostly correct or nearly correct, some buggy, a few broken (no slow hostile ones)."""
    ks = kinds(slug)
    correct = ["solution", "solution", "solution"] + [k for k in ks if k.startswith("correct")] * 2
    bugs = [k for k in ks if k.startswith("bug_")]
    broken = ["stub", "corrupt", "missing"] + [k for k in ks if k in ("hostile_syntax_error", "hostile_sys_exit")]
    return correct + bugs + broken


def notebook_for(kind: str, slug: str, release_dir: Path) -> bytes | None:
    """The notebook file's bytes for a kind of submission (None: the notebook is missing from the commit)."""
    from ..assignments import get_assignment

    name = get_assignment(slug).notebook
    stub = json.loads((release_dir / slug / name).read_text())
    if kind == "solution":
        return (KIT_ROOT / "assignments" / slug / name).read_bytes()
    if kind == "stub":
        return _dump(stub)
    if kind == "corrupt":
        text = _dump(stub)
        return text[: len(text) // 2]
    if kind == "missing":
        return None
    source = (EXAMPLES / slug / f"{kind}.py").read_text()
    nb = copy.deepcopy(stub)
    if re.search(r"^# %%", source, flags=re.MULTILINE):
        parts = re.split(r"^# %%.*\n", source, flags=re.MULTILINE)[1:]
        nb["cells"] = [_code_cell(p.strip("\n") + "\n") for p in parts]
    else:
        nb["cells"].append(_code_cell(source))
    return _dump(nb)


def _code_cell(source: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)}


def _dump(nb: dict) -> bytes:
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode()


def git_env(when: dt.datetime, who: str = "student") -> dict:
    stamp = when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp, GIT_AUTHOR_NAME=who, GIT_COMMITTER_NAME=who,
               GIT_AUTHOR_EMAIL=f"{who}@example.edu", GIT_COMMITTER_EMAIL=f"{who}@example.edu",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null")
    return env


def _git(repo: Path, *args: str, env: dict) -> None:
    subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args], cwd=repo,
                   env=env, check=True, capture_output=True)


def make_repo(repo: Path, release_dir: Path, start: dt.datetime) -> None:
    """A new repository holding the released template as its first commit (GitHub Classroom's starter)."""
    shutil.copytree(release_dir, repo, ignore=shutil.ignore_patterns("__pycache__", ".git"))
    env = git_env(start, "github-classroom[bot]")
    _git(repo, "init", "-q", env=env)
    _git(repo, "add", "-A", env=env)
    _git(repo, "commit", "-q", "-m", "Initial commit", env=env)


def commit_notebook(repo: Path, slug: str, kind: str, release_dir: Path, when: dt.datetime,
                    message: str | None = None, who: str = "student") -> str:
    """Replace the week's notebook with ``kind``'s and commit it at ``when``; returns the commit SHA."""
    from ..assignments import get_assignment

    path = repo / slug / get_assignment(slug).notebook
    data = notebook_for(kind, slug, release_dir)
    env = git_env(when, who)
    if data is None:
        if path.exists():
            _git(repo, "rm", "-q", str(path.relative_to(repo)), env=env)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        _git(repo, "add", str(path.relative_to(repo)), env=env)
    _git(repo, "commit", "-q", "--allow-empty", "-m", message or f"{slug}: {kind}", env=env)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()


def make_class(folder: Path, slug: str, students: dict[str, str], release_dir: Path,
               start: dt.datetime, submitted: dt.datetime, classroom_name: str | None = None) -> Path:
    """``<folder>/<classroom_name>-submissions/<classroom_name>-<user>/``, one repository per student, each
    with the starter commit and a commit of the student's ``kind``. Returns the ``-submissions`` folder."""
    name = classroom_name or slug.replace("_", "-")
    root = folder / f"{name}-submissions"
    root.mkdir(parents=True, exist_ok=True)
    for user, kind in students.items():
        repo = root / f"{name}-{user}"
        make_repo(repo, release_dir, start)
        commit_notebook(repo, slug, kind, release_dir, submitted, who=user)
    return root


def generated_students(slug: str, n: int, mix: list[str] | None = None) -> dict[str, str]:
    """``n`` students cycling through ``mix`` (default: ``default_mix``), named ``student001``..."""
    mix = mix or default_mix(slug)
    return {f"student{i + 1:03d}": mix[i % len(mix)] for i in range(n)}
