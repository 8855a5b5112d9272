"""Helpers for the course repository's official grading workflow (``.github/workflows/grade.yml``).

GitHub Actions is the scale-out engine: the roster is split into shards, each matrix job runs
``llmkit grade-all`` on its shard into its own SQLite gradebook, and one last job merges the shards into a
single gradebook and writes the TA report. This module does the splitting and the merging.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def roster_rows(roster: Path) -> tuple[list[str], list[dict]]:
    with open(roster, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _username(row: dict) -> str:
    for key, value in row.items():
        if key and key.strip().lower() in ("github_username", "github username", "username", "login"):
            return (value or "").strip().lower()
    return json.dumps(row, sort_keys=True)


def shard_count(roster: Path, per_shard: int, max_shards: int) -> int:
    _, rows = roster_rows(roster)
    return max(1, min(max_shards, math.ceil(len(rows) / max(per_shard, 1))))


def shard_roster(roster: Path, shards: int, index: int, out: Path) -> int:
    """Write shard ``index`` of ``shards`` (rows sorted by GitHub username, dealt round-robin, so shards are
    balanced and the same student lands in the same shard on every run); returns its row count."""
    if not 0 <= index < shards:
        raise ValueError(f"shard index {index} is not in 0..{shards - 1}")
    header, rows = roster_rows(roster)
    rows = sorted(rows, key=_username)[index::shards]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def plan(roster: Path, deadlines: Path | None, weeks: list[str], deadline: str, within_hours: float,
         now: str | None, per_shard: int, max_shards: int) -> list[dict]:
    """The matrix ``include`` list: one entry per (week, shard). A manual run names its weeks; a scheduled run
    (no weeks) takes each week of ``deadlines`` whose deadline passed within the last ``within_hours``."""
    import datetime as dt

    table = json.loads(deadlines.read_text()) if deadlines and deadlines.is_file() else {}
    if weeks:
        chosen = [(w, deadline or table.get(w, "")) for w in weeks]
    else:
        instant = dt.datetime.fromisoformat(now) if now else dt.datetime.now(dt.timezone.utc)
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=dt.timezone.utc)
        chosen = []
        for week, when in sorted(table.items()):
            due = dt.datetime.fromisoformat(when)
            if due.tzinfo is None:
                due = due.replace(tzinfo=dt.timezone.utc)
            if dt.timedelta(0) <= instant - due <= dt.timedelta(hours=within_hours):
                chosen.append((week, when))
    shards = shard_count(roster, per_shard, max_shards)
    return [{"week": w, "deadline": d, "shard": i, "shards": shards} for w, d in chosen for i in range(shards)]


def _columns(obj, skip=("id",)) -> dict:
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns if c.key not in skip}


def merge_gradebooks(out: Path, shards: list[Path]) -> dict:
    """Copy every shard gradebook into ``out`` (created if needed): students and repositories are matched by
    their unique keys, a submission already in ``out`` (same student, week, commit) is kept as it is, ids are
    renumbered. Returns counts."""
    from sqlalchemy import select

    from ..gradebook.models import (Assignment, Gradebook, GradingFailure, GradingRun, ManualScore, Repository,
                                    Student, Submission, TestResult, WrittenAnswer)

    target = Gradebook(out)
    counts = {"shards": 0, "students": 0, "submissions": 0, "skipped": 0, "failures": 0}
    for path in shards:
        if path.resolve() == Path(out).resolve():
            continue
        source = Gradebook(path)
        with source.session() as s, target.Session.begin() as t:
            for a in s.scalars(select(Assignment)):
                mine = t.get(Assignment, a.slug)
                if mine is None:
                    t.add(Assignment(slug=a.slug, **_columns(a, ("slug",))))
                else:
                    for key, value in _columns(a, ("slug",)).items():
                        if value and not getattr(mine, key):
                            setattr(mine, key, value)
            students = {}
            for st in s.scalars(select(Student)):
                mine = t.scalar(select(Student).where(Student.username == st.username))
                if mine is None:
                    mine = Student(**_columns(st))
                    t.add(mine)
                    t.flush()
                    counts["students"] += 1
                students[st.id] = mine.id
            repos = {}
            for r in s.scalars(select(Repository)):
                sid = students[r.student_id]
                mine = t.scalar(select(Repository).where(Repository.student_id == sid,
                                                         Repository.assignment_slug == r.assignment_slug,
                                                         Repository.url == r.url))
                if mine is None:
                    mine = Repository(**{**_columns(r), "student_id": sid})
                    t.add(mine)
                    t.flush()
                repos[r.id] = mine.id
            runs = {}
            for run in s.scalars(select(GradingRun)):
                mine = GradingRun(**_columns(run))
                t.add(mine)
                t.flush()
                runs[run.id] = mine.id
            for sub in s.scalars(select(Submission)):
                sid = students[sub.student_id]
                exists = t.scalar(select(Submission.id).where(Submission.student_id == sid,
                                                              Submission.assignment_slug == sub.assignment_slug,
                                                              Submission.commit_sha == sub.commit_sha))
                if exists is not None:
                    counts["skipped"] += 1
                    continue
                mine = Submission(**{**_columns(sub), "student_id": sid,
                                     "repository_id": repos.get(sub.repository_id),
                                     "run_id": runs.get(sub.run_id)})
                t.add(mine)
                t.flush()
                for test in sub.tests:
                    t.add(TestResult(**{**_columns(test), "submission_id": mine.id}))
                for answer in sub.answers:
                    t.add(WrittenAnswer(**{**_columns(answer), "submission_id": mine.id}))
                counts["submissions"] += 1
            for f in s.scalars(select(GradingFailure)):
                t.add(GradingFailure(**{**_columns(f), "run_id": runs.get(f.run_id)}))
                counts["failures"] += 1
            for m in s.scalars(select(ManualScore)):
                t.add(ManualScore(**{**_columns(m), "student_id": students[m.student_id]}))
        source.close()
        counts["shards"] += 1
    target.close()
    return counts
