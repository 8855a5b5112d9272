"""What exports, the report and the manual-grading tools read: the counted submission of each student and week,
its written answers with their effective manual scores, and the totals.

Which submission counts (``policy``):

* ``on-time`` (default): the latest submission committed at or before the deadline; a student with none
  counts with their latest late one (flagged ``late``), so late work is visible and never silently zero;
* ``latest``: the latest submission, late or not.

A manual score belongs to an answer's text: the latest score entered for (student, week, question, answer
SHA-256) applies to every submission with that same answer. An unanswered question scores 0 without a TA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from .models import Assignment, ManualScore, Student, Submission

POLICIES = ("on-time", "latest")


@dataclass
class ManualItem:
    question_id: str
    max_points: int
    answered: bool
    answer: str
    answer_sha256: str
    points: float | None  # None: waiting for a TA
    grader: str = ""
    comment: str = ""
    source: str = ""

    @property
    def status(self) -> str:
        if self.grader:  # a TA scored it (an unanswered question too, if a TA chose to)
            return "graded"
        if not self.answered:
            return "unanswered"
        return "pending" if self.points is None else "graded"


@dataclass
class StudentWeek:
    student: Student
    assignment: Assignment
    submission: Submission | None
    attempts: int = 0
    manual: list[ManualItem] = field(default_factory=list)

    @property
    def auto(self) -> int:
        return self.submission.auto_score if self.submission else 0

    @property
    def auto_max(self) -> int:
        return self.submission.auto_max if self.submission else self.assignment.auto_points

    @property
    def manual_points(self) -> float:
        return sum(m.points or 0 for m in self.manual)

    @property
    def manual_max(self) -> int:
        return self.assignment.manual_points

    @property
    def total(self) -> float:
        return self.auto + self.manual_points

    @property
    def total_max(self) -> int:
        return self.auto_max + self.manual_max

    @property
    def pending(self) -> int:
        return sum(1 for m in self.manual if m.status == "pending")


def pick(subs: list[Submission], policy: str = "on-time") -> Submission | None:
    if not subs:
        return None
    order = sorted(subs, key=lambda s: (s.committed_at or s.graded_at, s.id))
    if policy == "latest":
        return order[-1]
    on_time = [s for s in order if not s.late]
    return (on_time or order)[-1]


def latest_scores(s: Session) -> dict[tuple, ManualScore]:
    out: dict[tuple, ManualScore] = {}
    for m in s.scalars(select(ManualScore).order_by(ManualScore.created_at, ManualScore.id)):
        out[(m.student_id, m.assignment_slug, m.question_id, m.answer_sha256)] = m
    return out


def manual_items(sub: Submission, assignment: Assignment, scores: dict[tuple, ManualScore]) -> list[ManualItem]:
    by_id = {a.question_id: a for a in sub.answers} if sub else {}
    items = []
    for q in assignment.questions or []:
        a = by_id.get(q["id"])
        answer, digest, answered = (a.answer, a.answer_sha256, a.answered) if a else ("", "", False)
        m = scores.get((sub.student_id, assignment.slug, q["id"], digest)) if sub else None
        if m is not None:
            items.append(ManualItem(q["id"], q["points"], answered, answer, digest, m.points, m.grader, m.comment,
                                    m.source))
        else:
            items.append(ManualItem(q["id"], q["points"], answered, answer, digest, None if answered else 0.0))
    return items


def class_table(s: Session, slugs: list[str] | None = None, policy: str = "on-time") -> list[StudentWeek]:
    """One row per (student, week) for every student in the gradebook and every week asked for."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}")
    assignments = [a for a in s.scalars(select(Assignment).order_by(Assignment.slug)) if not slugs or a.slug in slugs]
    students = list(s.scalars(select(Student).order_by(Student.username)))
    subs = s.scalars(select(Submission).options(selectinload(Submission.answers), selectinload(Submission.tests),
                                                selectinload(Submission.repository)))
    grouped: dict[tuple[int, str], list[Submission]] = {}
    for sub in subs:
        grouped.setdefault((sub.student_id, sub.assignment_slug), []).append(sub)
    scores = latest_scores(s)
    rows = []
    for a in assignments:
        for st in students:
            mine = grouped.get((st.id, a.slug), [])
            chosen = pick(mine, policy)
            row = StudentWeek(st, a, chosen, len(mine))
            row.manual = manual_items(chosen, a, scores) if chosen else [
                ManualItem(q["id"], q["points"], False, "", "", 0.0) for q in a.questions or []]
            rows.append(row)
    return rows


def submissions_of(s: Session, username: str, slug: str | None = None) -> list[Submission]:
    q = select(Submission).join(Student).where(Student.username == username)
    if slug:
        q = q.where(Submission.assignment_slug == slug)
    return list(s.scalars(q.order_by(Submission.assignment_slug, Submission.committed_at, Submission.id)))
