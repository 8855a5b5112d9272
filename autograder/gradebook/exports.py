"""Exports: the class CSV, Canvas' gradebook import CSV, and one JSON file per student.

Class CSV (``class.csv``): one row per (student, week). Its first ten columns are those of
``gh classroom assignment-grades`` in the same order and meaning (``assignment_name, assignment_url,
starter_code_url, github_username, roster_identifier, student_repository_name, student_repository_url,
submission_timestamp, points_awarded, points_available``) plus Classroom's ``group_name``; here
``points_awarded``/``points_available`` include the manual points. Then: ``assignment`` (slug), ``commit_sha``,
``late``, ``late_by_hours``, ``device``, ``flags``, ``status``, ``auto_points``, ``auto_available``,
``manual_points``, ``manual_available``, ``manual_pending``, ``attempts``, ``graded_at``, one
``exercise:<name>`` column per exercise, one ``test:<id>`` column per hidden test (points earned) and one
``written:<question>`` column per written question.

Canvas CSV (``canvas.csv``): Canvas' gradebook import format, as Canvas' own export writes it: the columns
``Student, ID, SIS User ID, SIS Login ID, Section``, then one column per week, named by the week's
``canvas_column`` (set it to Canvas' ``Name (assignment id)`` to update an existing assignment; a name without
an id makes Canvas create a new assignment), a second row ``Points Possible``, and one row per student with the
week's total. Canvas matches students by ``ID``, ``SIS User ID`` or ``SIS Login ID``, so these come from the
roster; rows with none of them cannot be matched and are counted in the returned summary.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .collect import safe_name
from .models import Gradebook
from .queries import StudentWeek, class_table, submissions_of

CLASSROOM_COLUMNS = ["assignment_name", "assignment_url", "starter_code_url", "github_username", "roster_identifier",
                     "student_repository_name", "student_repository_url", "submission_timestamp", "points_awarded",
                     "points_available"]
EXTRA_COLUMNS = ["group_name", "assignment", "commit_sha", "late", "late_by_hours", "device", "flags", "status",
                 "auto_points", "auto_available", "manual_points", "manual_available", "manual_pending", "attempts",
                 "graded_at"]
CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def _num(x: float) -> str:
    return f"{x:g}"


def _timestamp(row: StudentWeek) -> str:
    sub = row.submission
    return sub.committed_at.strftime("%Y-%m-%d %H:%M:%S UTC") if sub and sub.committed_at else ""


def class_rows(rows: list[StudentWeek]) -> tuple[list[str], list[dict]]:
    exercises, tests, questions = [], [], []
    for r in rows:
        if r.submission:
            for t in r.submission.tests:
                if f"exercise:{t.exercise}" not in exercises:
                    exercises.append(f"exercise:{t.exercise}")
                if f"test:{t.test_id}" not in tests:
                    tests.append(f"test:{t.test_id}")
        for q in r.assignment.questions or []:
            if f"written:{q['id']}" not in questions:
                questions.append(f"written:{q['id']}")
    header = CLASSROOM_COLUMNS + EXTRA_COLUMNS + exercises + tests + questions
    out = []
    for r in rows:
        sub, a, st = r.submission, r.assignment, r.student
        repo = sub.repository if sub else None
        d = {
            "assignment_name": a.classroom_name or a.slug, "assignment_url": a.classroom_url,
            "starter_code_url": a.starter_code_url, "github_username": st.username,
            "roster_identifier": st.roster_identifier, "student_repository_name": repo.name if repo else "",
            "student_repository_url": repo.url if repo else "", "submission_timestamp": _timestamp(r),
            "points_awarded": _num(r.total), "points_available": str(r.total_max), "group_name": "",
            "assignment": a.slug, "commit_sha": sub.commit_sha if sub else "",
            "late": ("true" if sub.late else "false") if sub else "",
            "late_by_hours": f"{sub.late_by_s / 3600:.2f}" if sub and sub.late else "",
            "device": sub.device if sub else "", "flags": "; ".join(f["detail"] if f["kind"] != "late" else "late"
                                                                    for f in (sub.flags if sub else [])),
            "status": sub.status if sub else "missing", "auto_points": str(r.auto), "auto_available": str(r.auto_max),
            "manual_points": _num(r.manual_points), "manual_available": str(r.manual_max),
            "manual_pending": str(r.pending), "attempts": str(r.attempts),
            "graded_at": sub.graded_at.strftime("%Y-%m-%d %H:%M:%S UTC") if sub else "",
        }
        if sub:
            per_ex: dict[str, int] = {}
            for t in sub.tests:
                per_ex[t.exercise] = per_ex.get(t.exercise, 0) + t.points
                d[f"test:{t.test_id}"] = str(t.points)
            d.update({f"exercise:{k}": str(v) for k, v in per_ex.items()})
        for m in r.manual:
            d[f"written:{m.question_id}"] = "" if m.points is None else _num(m.points)
        out.append(d)
    return header, out


def write_class_csv(gb: Gradebook, path: Path, slugs: list[str] | None = None, policy: str = "on-time") -> int:
    with gb.session() as s:
        header, rows = class_rows(class_table(s, slugs, policy))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return len(rows)


def write_canvas_csv(gb: Gradebook, path: Path, slugs: list[str] | None = None, policy: str = "on-time") -> dict:
    with gb.session() as s:
        rows = class_table(s, slugs, policy)
        weeks = []
        for r in rows:
            if r.assignment.slug not in [w.slug for w in weeks]:
                weeks.append(r.assignment)
        columns = {w.slug: (w.canvas_column or w.title or w.slug) for w in weeks}
        students: dict[str, dict] = {}
        unmatched = set()
        for r in rows:
            st = r.student
            d = students.setdefault(st.username, {"Student": st.name or st.username, "ID": st.canvas_id,
                                                  "SIS User ID": st.sis_user_id,
                                                  "SIS Login ID": st.sis_login_id, "Section": st.section})
            d[columns[r.assignment.slug]] = _num(r.total)
            if not (st.canvas_id or st.sis_user_id or st.sis_login_id):
                unmatched.add(st.username)
        possible = {"Student": "    Points Possible", **{columns[w.slug]: str(w.auto_points + w.manual_points)
                                                         for w in weeks}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CANVAS_FIXED + list(columns.values()), extrasaction="ignore")
        w.writeheader()
        w.writerow(possible)
        for username in sorted(students):
            w.writerow(students[username])
    return {"students": len(students), "unmatched": sorted(unmatched), "columns": list(columns.values())}


def student_documents(gb: Gradebook, slugs: list[str] | None = None, policy: str = "on-time") -> dict[str, dict]:
    """username -> ``llmkit/gradebook-student/v1``: counted result per week, manual scores, every attempt."""
    docs: dict[str, dict] = {}
    with gb.session() as s:
        for r in class_table(s, slugs, policy):
            st, sub = r.student, r.submission
            doc = docs.setdefault(st.username, {"schema": "llmkit/gradebook-student/v1", "github_username": st.username,
                                                "name": st.name, "weeks": []})
            doc["weeks"].append({
                "assignment": r.assignment.slug, "policy": policy,
                "points_awarded": r.total, "points_available": r.total_max,
                "auto_points": r.auto, "manual_points": r.manual_points, "manual_pending": r.pending,
                "counted": None if sub is None else {
                    "commit_sha": sub.commit_sha, "committed_at": sub.committed_at.isoformat() + "Z"
                    if sub.committed_at else None, "late": sub.late, "flags": sub.flags, "device": sub.device},
                "manual": [{"question": m.question_id, "status": m.status, "points": m.points,
                            "max_points": m.max_points, "grader": m.grader, "comment": m.comment} for m in r.manual],
                "result": sub.result if sub else None,
                "attempts": [{"commit_sha": x.commit_sha, "committed_at": x.committed_at.isoformat() + "Z"
                              if x.committed_at else None, "late": x.late, "auto_points": x.auto_score,
                              "status": x.status} for x in submissions_of(s, st.username, r.assignment.slug)],
            })
    return docs


def write_student_json(gb: Gradebook, folder: Path, slugs: list[str] | None = None, policy: str = "on-time") -> int:
    folder.mkdir(parents=True, exist_ok=True)
    docs = student_documents(gb, slugs, policy)
    for username, doc in docs.items():
        (folder / f"{safe_name(username)}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return len(docs)
