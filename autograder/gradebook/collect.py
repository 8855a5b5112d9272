"""Find what to grade: each student's repository, at the last commit before the deadline (and the late one).

Two inputs:

* a folder laid out as ``gh classroom clone student-repos`` leaves it: ``<assignment>-submissions/<repo>/``, each a
  git clone; the student's GitHub username is the repository name without the ``<assignment>-`` prefix;
* a roster CSV with one row per repository (``github_username``, ``repository_url``, optionally ``assignment``,
  ``deadline``, ``name``, ``email``, ``roster_identifier``, ``canvas_id``, ``sis_user_id``, ``sis_login_id``,
  ``section``); each URL is cloned (bare) into the gradebook's store, or fetched when already there.

Repositories are only read: commits are found with ``git rev-list -1 --before=<deadline> HEAD``, and the one file
graded, the week's notebook, is copied out of git's object store into a snapshot folder
(``<store>/snapshots/<week>/<user>/<sha>/<week>/<notebook>``). Nothing is checked out, so a symbolic link, a
hook or a huge file in a repository does nothing: only a regular file at the notebook's path is taken.

The same listing of the commit's tree gives the flags that compare the repository with the release: public
tests, workflow files and the shipped ``autograder/`` package modified, deleted or added.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

GIT_TIMEOUT_S = 300
MAX_NOTEBOOK_BYTES = 50 << 20
ROSTER_ALIASES = {
    "github_username": ("github_username", "username", "github", "login"),
    "repository_url": ("repository_url", "student_repository_url", "repo_url", "url", "repository"),
    "assignment": ("assignment", "week", "slug"),
    "deadline": ("deadline", "due", "due_at"),
    "name": ("name", "student", "student_name"),
    "email": ("email",),
    "roster_identifier": ("roster_identifier", "identifier"),
    "canvas_id": ("canvas_id", "id"),
    "sis_user_id": ("sis_user_id",),
    "sis_login_id": ("sis_login_id",),
    "section": ("section",),
}
STUDENT_FIELDS = ("name", "email", "roster_identifier", "canvas_id", "sis_user_id", "sis_login_id", "section")


class CollectError(Exception):
    pass


@dataclass
class Target:
    """One repository to take one week's submission from."""
    username: str
    slug: str
    url: str  # as given (remote URL or path), shown in exports
    name: str  # repository name
    git_dir: Path  # where git reads from: the classroom clone or our bare clone
    deadline: dt.datetime | None = None  # aware, UTC
    student: dict = field(default_factory=dict)  # name, email, ... for the students table


@dataclass
class Candidate:
    """One commit to grade (or already graded): the snapshot folder holds its notebook."""
    target: Target
    commit_sha: str
    committed_at: dt.datetime  # naive UTC
    late: bool
    late_by_s: float
    snapshot: Path
    notebook_sha256: str
    flags: list[dict]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.target.username, self.target.slug, self.commit_sha)


# -- time ---------------------------------------------------------------------------------------------
def parse_deadline(text: str | None) -> dt.datetime | None:
    """ISO 8601 (``2026-03-01T23:59:00-05:00``, ``2026-03-01 23:59Z``); without an offset it is UTC."""
    if not text or not str(text).strip():
        return None
    value = str(text).strip().replace("Z", "+00:00").replace(" UTC", "+00:00")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CollectError(f"deadline {text!r} is not an ISO 8601 date and time (e.g. 2026-03-01T23:59:00-05:00)")
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)


def naive_utc(when: dt.datetime | None) -> dt.datetime | None:
    return None if when is None else when.astimezone(dt.timezone.utc).replace(tzinfo=None)


# -- git ----------------------------------------------------------------------------------------------
def git(*args: str, cwd: Path | None = None, binary: bool = False, check: bool = True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/true", SSH_ASKPASS="/bin/true", LC_ALL="C")
    proc = subprocess.run(["git", "-c", "safe.directory=*", "-c", "core.hooksPath=/dev/null", *args], cwd=cwd,
                          capture_output=True, timeout=GIT_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise CollectError(f"git {' '.join(args[:3])} failed: {proc.stderr.decode(errors='replace').strip()[:500]}")
    return proc.stdout if binary else proc.stdout.decode(errors="replace")


def blob_id(data: bytes) -> str:
    """git's object id of a file with these bytes (compare with ``ls-tree`` without reading the blob)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sync_clone(url: str, dest: Path) -> Path:
    """A bare clone of ``url`` at ``dest``: cloned the first time, fetched (all branches, forced) after."""
    if (dest / "HEAD").is_file():
        git("--git-dir", str(dest), "fetch", "--quiet", "--prune", "--force", "origin",
            "+refs/heads/*:refs/heads/*")
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
        try:
            git("clone", "--quiet", "--bare", "--no-hardlinks", "--", url, str(tmp / "repo.git"))
            os.replace(tmp / "repo.git", dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _tree(git_dir: Path, sha: str) -> dict[str, tuple[str, str, str, int]]:
    """path -> (mode, type, object id, size) for every entry of the commit's tree."""
    out = git("--git-dir", str(git_dir), "ls-tree", "-r", "-l", "-z", "--full-tree", sha, binary=True)
    entries = {}
    for raw in out.split(b"\0"):
        if not raw:
            continue
        meta, path = raw.split(b"\t", 1)
        mode, kind, obj, size = meta.decode().split()
        entries[path.decode(errors="replace")] = (mode, kind, obj, int(size) if size.isdigit() else 0)
    return entries


# -- targets ------------------------------------------------------------------------------------------
def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip(".") or "_"


def _git_dir(repo: Path) -> Path:
    return repo / ".git" if (repo / ".git").exists() else repo


def classroom_targets(folder: Path, slug: str, deadline: dt.datetime | None,
                      roster: dict[str, dict] | None = None) -> list[Target]:
    """``gh classroom clone student-repos`` output: ``folder`` is ``<assignment>-submissions`` (or holds one)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CollectError(f"{folder}: no such folder")
    subs = [d for d in sorted(folder.iterdir()) if d.is_dir() and d.name.endswith("-submissions")]
    if subs and not any((d / ".git").exists() for d in folder.iterdir() if d.is_dir()):
        wanted = [d for d in subs if slug.replace("_", "-") in d.name or slug in d.name] or subs
        return [t for d in wanted for t in classroom_targets(d, slug, deadline, roster)]
    prefix = folder.name[: -len("-submissions")] + "-" if folder.name.endswith("-submissions") else ""
    targets = []
    for repo in sorted(folder.iterdir()):
        if not repo.is_dir() or repo.is_symlink() or not (repo / ".git").exists() and not (repo / "HEAD").is_file():
            continue
        name = repo.name[:-4] if repo.name.endswith(".git") else repo.name
        username = name[len(prefix):] if prefix and name.startswith(prefix) and len(name) > len(prefix) else name
        url = git("-C", str(repo), "remote", "get-url", "origin", check=False).strip() or str(repo)
        info = (roster or {}).get(username.lower(), {})
        targets.append(Target(username, slug, url, name, _git_dir(repo), deadline,
                              {k: info.get(k, "") for k in STUDENT_FIELDS}))
    return targets


def read_roster(path: Path) -> list[dict]:
    """Rows of a roster CSV, keys normalised to ROSTER_ALIASES' names (GitHub Classroom's own roster export,
    ``identifier,github_username,github_id,name``, works as is)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = {h.strip().lower(): h for h in (reader.fieldnames or [])}
        rows = []
        for raw in reader:
            row = {}
            for key, aliases in ROSTER_ALIASES.items():
                for alias in aliases:
                    if alias in header and (raw.get(header[alias]) or "").strip():
                        row[key] = raw[header[alias]].strip()
                        break
            if row.get("github_username") or row.get("repository_url"):
                rows.append(row)
    if not rows:
        raise CollectError(f"{path}: no rows with a github_username or repository_url column")
    return rows


def roster_targets(roster: Path, slugs: list[str], store: Path, deadline: dt.datetime | None,
                   on_error=None) -> list[Target]:
    """Clone or fetch every repository of the roster (rows without a repository are students without a repo)."""
    targets = []
    for row in read_roster(roster):
        url = row.get("repository_url")
        if not url:
            continue
        username = row.get("github_username") or safe_name(Path(url.rstrip("/")).name)
        name = Path(url.rstrip("/")).name.removesuffix(".git")
        row_deadline = parse_deadline(row["deadline"]) if row.get("deadline") else deadline
        for slug in ([row["assignment"]] if row.get("assignment") else slugs):
            if slug not in slugs:
                continue
            dest = store / "repos" / safe_name(username) / (safe_name(name) + ".git")
            try:
                git_dir = sync_clone(url, dest)
            except (CollectError, subprocess.TimeoutExpired) as exc:
                if on_error:
                    on_error(username, slug, f"could not clone or fetch {url}: {exc}")
                continue
            targets.append(Target(username, slug, url, name, git_dir, row_deadline,
                                  {k: row.get(k, "") for k in STUDENT_FIELDS}))
    return targets


def roster_lookup(path: Path | None) -> dict[str, dict]:
    if not path:
        return {}
    return {r["github_username"].lower(): r for r in read_roster(path) if r.get("github_username")}


# -- commits and snapshots ----------------------------------------------------------------------------
def commits_to_grade(target: Target, include_late: bool = True) -> list[tuple[str, dt.datetime, bool]]:
    """(sha, committed_at UTC naive, late): the last commit at or before the deadline, and HEAD when it is later."""
    head = git("--git-dir", str(target.git_dir), "rev-parse", "--verify", "--quiet", "HEAD^{commit}",
               check=False).strip()
    if not head:
        return []
    chosen = []
    if target.deadline is None:
        chosen.append(head)
    else:
        epoch = int(target.deadline.timestamp())
        on_time = git("--git-dir", str(target.git_dir), "rev-list", "-1", f"--before={epoch}", head).strip()
        if on_time:
            chosen.append(on_time)
        if head != on_time and include_late:
            chosen.append(head)
    out = []
    for sha in chosen:
        stamp = int(git("--git-dir", str(target.git_dir), "show", "-s", "--format=%ct", sha).strip())
        when = dt.datetime.fromtimestamp(stamp, dt.timezone.utc)
        late = target.deadline is not None and when > target.deadline
        out.append((sha, when.replace(tzinfo=None), late))
    return out


class ReleaseIndex:
    """The released files a submission's repository is compared with (public tests, workflows, kit package)."""

    def __init__(self, release_dir: Path | None):
        self.files: dict[str, str] = {}
        if release_dir and Path(release_dir).is_dir():
            root = Path(release_dir)
            for path in sorted(root.rglob("*")):
                rel = path.relative_to(root).as_posix()
                if path.is_file() and not path.is_symlink() and _watched(rel) and "__pycache__" not in rel:
                    self.files[rel] = blob_id(path.read_bytes())

    def flags(self, tree: dict, slug: str) -> list[dict]:
        if not self.files:
            return []
        watched = {p: v for p, v in self.files.items() if _watched(p, slug)}
        present = [p for p in watched if p in tree]
        flags = []
        for path, obj in sorted(watched.items()):
            if path in tree and tree[path][2] != obj:
                flags.append({"kind": _kind(path), "detail": f"{path} modified"})
            elif path not in tree and present:  # a repository laid out otherwise has none of them: no flag
                flags.append({"kind": _kind(path), "detail": f"{path} deleted"})
        for path in sorted(tree):
            if _watched(path, slug) and path not in watched and (path.startswith(".github/") or
                                                                  path.endswith("public_tests.py")):
                flags.append({"kind": _kind(path), "detail": f"{path} added"})
        return flags


def _watched(rel: str, slug: str | None = None) -> bool:
    if rel.startswith(".github/") or rel.startswith("autograder/"):
        return True
    if rel.endswith("/public_tests.py"):
        return slug is None or rel == f"{slug}/public_tests.py"
    return False


def _kind(path: str) -> str:
    if path.startswith(".github/"):
        return "modified_workflow"
    if path.endswith("public_tests.py"):
        return "modified_public_tests"
    return "modified_kit"


def snapshot(target: Target, sha: str, store: Path, notebook: str, release: ReleaseIndex) -> tuple[Path, str, list]:
    """Copy the commit's notebook (a regular file only) into its snapshot folder; returns (folder, sha256, flags)."""
    folder = store / "snapshots" / target.slug / safe_name(target.username) / sha
    tree = _tree(target.git_dir, sha)
    flags = release.flags(tree, target.slug)
    path = next((p for p in (f"{target.slug}/{notebook}", notebook) if p in tree), None)
    entry = tree.get(path) if path else None
    if entry is not None and entry[0] == "120000":
        flags.append({"kind": "notebook_link", "detail": f"{path} is a symbolic link; not followed"})
        entry = None
    elif entry is not None and entry[1] != "blob":
        entry = None
    digest = ""
    if not folder.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=".snap-", dir=_mkdir(folder.parent)))
        try:
            if entry is not None and entry[3] <= MAX_NOTEBOOK_BYTES:
                data = git("--git-dir", str(target.git_dir), "cat-file", "blob", entry[2], binary=True)
                (tmp / target.slug).mkdir()
                (tmp / target.slug / notebook).write_bytes(data)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if entry is not None and entry[3] > MAX_NOTEBOOK_BYTES:
        flags.append({"kind": "notebook_too_large", "detail": f"{path} is {entry[3]} bytes; not graded"})
    nb = folder / target.slug / notebook
    if nb.is_file():
        digest = hashlib.sha256(nb.read_bytes()).hexdigest()
    return folder, digest, flags


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def candidates(targets: list[Target], store: Path, release_dir: Path | None, include_late: bool = True,
               on_error=None) -> list[Candidate]:
    from ..assignments import get_assignment

    release = ReleaseIndex(release_dir)
    notebooks = {}
    out = []
    for t in targets:
        notebook = notebooks.setdefault(t.slug, get_assignment(t.slug).notebook)
        try:
            for sha, when, late in commits_to_grade(t, include_late):
                folder, digest, flags = snapshot(t, sha, store, notebook, release)
                late_by = (when - naive_utc(t.deadline)).total_seconds() if late else 0.0
                out.append(Candidate(t, sha, when, late, late_by, folder, digest, flags))
        except (CollectError, subprocess.TimeoutExpired) as exc:
            if on_error:
                on_error(t.username, t.slug, str(exc))
    return out
