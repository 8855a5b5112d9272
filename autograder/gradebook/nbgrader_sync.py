"""Round trip of the written questions through nbgrader, for TAs who grade in nbgrader's formgrader.

Export (``export_to_nbgrader``) writes, in an nbgrader course folder:

* ``gradebook.db``: through nbgrader's own API (``nbgrader.api.Gradebook``): the week as an assignment, its
  notebook, one manually graded cell (grade + solution cell, as nbgrader marks a written answer) per
  question, each student, and a submission per counted notebook. Scores already entered in llmkit are copied
  in; scores already in nbgrader are never overwritten. Unanswered questions get 0 and need no grading.
* ``autograded/<student>/<week>/<notebook>.ipynb`` (and ``submitted/...`` with ``timestamp.txt``): the graded
  notebook itself, which the formgrader shows;
* ``llmkit-export.json``: which answer (SHA-256 of its text) each nbgrader grade belongs to.

Import (``import_from_nbgrader``) reads every grade with a manual score back and appends it as a
``ManualScore`` (source ``nbgrader``, with nbgrader's comment) for the exported answer, when it differs from
the score llmkit already has. A student who resubmitted since the export keeps the new answer in the queue:
the imported score belongs to the answer the TA actually read.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from .models import Gradebook
from .queries import class_table

EXPORT_MAP = "llmkit-export.json"


def _nb_name(slug: str) -> str:
    from ..assignments import get_assignment

    return Path(get_assignment(slug).notebook).stem


def _notebook_bytes(sub, slug: str) -> bytes | None:
    from ..assignments import get_assignment

    folder = Path(sub.result.get("submission", ""))
    path = folder / slug / get_assignment(slug).notebook
    if not path.is_file():
        path = folder / get_assignment(slug).notebook
    return path.read_bytes() if path.is_file() else None


def _answers_notebook(row) -> bytes:
    """When the snapshot is gone: a notebook of the answers alone, with nbgrader's cell metadata."""
    cells = []
    for m in row.manual:
        cells.append({"cell_type": "markdown", "id": m.question_id, "source": m.answer or "",
                      "metadata": {"nbgrader": {"grade": True, "solution": True, "locked": False,
                                                "grade_id": m.question_id, "points": m.max_points,
                                                "schema_version": 3, "task": False}}})
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    return json.dumps(nb, indent=1).encode()


def export_to_nbgrader(gb: Gradebook, course_dir: Path, slug: str, policy: str = "on-time") -> dict:
    from nbgrader.api import Gradebook as NbGradebook

    course_dir.mkdir(parents=True, exist_ok=True)
    nb_name = _nb_name(slug)
    mapping_path = course_dir / EXPORT_MAP
    mapping = json.loads(mapping_path.read_text()) if mapping_path.is_file() else {}
    counts = {"students": 0, "copied_scores": 0, "needs_grading": 0}
    with gb.session() as s:
        rows = [r for r in class_table(s, [slug], policy) if r.submission is not None]
        assignment = rows[0].assignment if rows else None
        ngb = NbGradebook(f"sqlite:///{course_dir / 'gradebook.db'}")
        try:
            ngb.update_or_create_assignment(slug, duedate=assignment.deadline if assignment else None)
            ngb.update_or_create_notebook(nb_name, slug)
            for q in (assignment.questions if assignment else []):
                ngb.update_or_create_grade_cell(q["id"], nb_name, slug, max_score=q["points"], cell_type="markdown")
                ngb.update_or_create_solution_cell(q["id"], nb_name, slug)
            for row in rows:
                st, sub = row.student, row.submission
                first, _, last = (st.name or "").partition(" ")
                ngb.update_or_create_student(st.username, first_name=first or None, last_name=last or None,
                                             email=st.email or None)
                stamp = sub.committed_at or dt.datetime.utcnow()
                ngb.update_or_create_submission(slug, st.username, timestamp=stamp)
                for m in row.manual:
                    grade = ngb.find_grade(m.question_id, nb_name, slug, st.username)
                    comment = ngb.find_comment(m.question_id, nb_name, slug, st.username)
                    if grade.manual_score is None and m.grader:  # a TA's score in llmkit: copied over
                        grade.manual_score = m.points
                        counts["copied_scores"] += 1
                        if m.comment and not comment.manual_comment:
                            comment.manual_comment = m.comment
                    elif grade.manual_score is None and not m.answered:  # nothing to grade: 0, as llmkit counts it
                        grade.auto_score = 0.0
                    grade.needs_manual_grade = grade.manual_score is None and m.answered
                    counts["needs_grading"] += int(grade.needs_manual_grade)
                    mapping[f"{st.username}/{slug}/{m.question_id}"] = m.answer_sha256
                ngb.db.commit()
                data = _notebook_bytes(sub, slug) or _answers_notebook(row)
                for stage in ("submitted", "autograded"):
                    folder = course_dir / stage / st.username / slug
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"{nb_name}.ipynb").write_bytes(data)
                    (folder / "timestamp.txt").write_text(stamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
                counts["students"] += 1
        finally:
            ngb.close()
    mapping_path.write_text(json.dumps(mapping, indent=1, sort_keys=True) + "\n")
    return counts


def import_from_nbgrader(gb: Gradebook, course_dir: Path, slug: str, grader: str = "nbgrader formgrader") -> dict:
    from nbgrader.api import Gradebook as NbGradebook
    from nbgrader.api import MissingEntry

    from .models import ManualScore, Student

    mapping_path = course_dir / EXPORT_MAP
    if not mapping_path.is_file():
        raise FileNotFoundError(f"{mapping_path}: export to this nbgrader course first (gradebook nbgrader-export)")
    mapping = json.loads(mapping_path.read_text())
    nb_name = _nb_name(slug)
    counts = {"imported": 0, "unchanged": 0, "ungraded": 0}
    ngb = NbGradebook(f"sqlite:///{course_dir / 'gradebook.db'}")
    try:
        with gb.Session.begin() as s:
            assignment = gb.assignment(s, slug)
            current = {}
            for m in s.query(ManualScore).filter_by(assignment_slug=slug).order_by(ManualScore.created_at,
                                                                                     ManualScore.id):
                current[(m.student_id, m.question_id, m.answer_sha256)] = m
            for key, digest in sorted(mapping.items()):
                username, week, qid = key.split("/", 2)
                if week != slug:
                    continue
                try:
                    grade = ngb.find_grade(qid, nb_name, slug, username)
                    comment = ngb.find_comment(qid, nb_name, slug, username).manual_comment or ""
                except MissingEntry:
                    continue
                if grade.manual_score is None:
                    counts["ungraded"] += 1
                    continue
                st = s.query(Student).filter_by(username=username).one()
                have = current.get((st.id, qid, digest))
                if have is not None and have.points == float(grade.manual_score) and have.comment == comment:
                    counts["unchanged"] += 1
                    continue
                q = next((q for q in assignment.questions if q["id"] == qid), {"points": grade.max_score})
                s.add(ManualScore(student_id=st.id, assignment_slug=slug, question_id=qid, answer_sha256=digest,
                                  points=float(grade.manual_score), max_points=int(q["points"]), grader=grader,
                                  comment=comment, source="nbgrader"))
                counts["imported"] += 1
    finally:
        ngb.close()
    return counts
