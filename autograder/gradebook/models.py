"""The gradebook's schema: SQLite through the SQLAlchemy 2 ORM.

Nothing is ever overwritten or deleted by grading:

* a ``Submission`` is one graded commit of one student's repository for one week, unique on
  (student, assignment, commit): grading the same commit again changes nothing, a new commit adds a row;
* its ``TestResult`` and ``WrittenAnswer`` rows are written in the same transaction as the submission, so a
  killed run leaves either the whole graded submission or nothing of it;
* a ``ManualScore`` is appended for every score a TA enters (the latest one counts); it belongs to the
  *answer text* (student, week, question, SHA-256 of the answer), so a resubmission with the same answer keeps
  its grade and a changed answer goes back into the queue;
* ``GradingRun`` and ``GradingFailure`` record what each run did, and what it could not grade (no score: the
  next run tries again).

The database uses WAL journaling with ``synchronous=FULL``: a committed submission survives a crash, readers
(the report, a TA's web page) never block the grading run.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint,
                        create_engine, event, select)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

SCHEMA_VERSION = "1"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON}


class Meta(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Student(Base):
    __tablename__ = "students"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)  # GitHub username (or team name)
    name: Mapped[str] = mapped_column(String(300), default="")
    email: Mapped[str] = mapped_column(String(300), default="")
    roster_identifier: Mapped[str] = mapped_column(String(300), default="")
    canvas_id: Mapped[str] = mapped_column(String(100), default="")  # Canvas' "ID" column
    sis_user_id: Mapped[str] = mapped_column(String(100), default="")
    sis_login_id: Mapped[str] = mapped_column(String(200), default="")
    section: Mapped[str] = mapped_column(String(200), default="")

    submissions: Mapped[list[Submission]] = relationship(back_populates="student")


class Assignment(Base):
    __tablename__ = "assignments"
    slug: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    auto_points: Mapped[int] = mapped_column(Integer, default=0)  # hidden suite, from the latest graded result
    manual_points: Mapped[int] = mapped_column(Integer, default=0)  # written questions
    deadline: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)  # UTC, naive
    classroom_name: Mapped[str] = mapped_column(String(300), default="")  # GitHub Classroom's assignment name
    classroom_url: Mapped[str] = mapped_column(String(500), default="")
    starter_code_url: Mapped[str] = mapped_column(String(500), default="")
    canvas_column: Mapped[str] = mapped_column(String(300), default="")  # e.g. "Week 2: Attention (1234)"
    questions: Mapped[list] = mapped_column(JSON, default=list)  # [{id, points, prompt}]


class Repository(Base):
    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("student_id", "assignment_slug", "url"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"))
    assignment_slug: Mapped[str] = mapped_column(ForeignKey("assignments.slug"))
    url: Mapped[str] = mapped_column(String(1000))
    name: Mapped[str] = mapped_column(String(300), default="")


class GradingRun(Base):
    __tablename__ = "grading_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    source: Mapped[str] = mapped_column(Text, default="")
    assignments: Mapped[list] = mapped_column(JSON, default=list)
    mode: Mapped[str] = mapped_column(String(40), default="")
    workers: Mapped[int] = mapped_column(Integer, default=1)
    host: Mapped[str] = mapped_column(String(200), default="")
    found: Mapped[int] = mapped_column(Integer, default=0)
    already_graded: Mapped[int] = mapped_column(Integer, default=0)
    graded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    peak_memory_bytes: Mapped[int] = mapped_column(Integer, default=0)


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("student_id", "assignment_slug", "commit_sha"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    assignment_slug: Mapped[str] = mapped_column(ForeignKey("assignments.slug"), index=True)
    repository_id: Mapped[int | None] = mapped_column(ForeignKey("repositories.id"), nullable=True)
    commit_sha: Mapped[str] = mapped_column(String(80))
    committed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)  # UTC, committer date
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    late_by_s: Mapped[float] = mapped_column(Float, default=0.0)
    notebook_sha256: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(20))  # completed | rejected
    auto_score: Mapped[int] = mapped_column(Integer)
    auto_max: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_s: Mapped[float] = mapped_column(Float, default=0.0)  # CPU time of its grading and worker processes
    device: Mapped[str] = mapped_column(String(200), default="cpu")
    host: Mapped[str] = mapped_column(String(200), default="")
    flags: Mapped[list] = mapped_column(JSON, default=list)  # [{kind, detail}]
    result: Mapped[dict] = mapped_column(JSON)  # the full llmkit/result/v1 document
    graded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("grading_runs.id"), nullable=True)

    student: Mapped[Student] = relationship(back_populates="submissions")
    repository: Mapped[Repository | None] = relationship()
    tests: Mapped[list[TestResult]] = relationship(back_populates="submission", cascade="all, delete-orphan",
                                                   order_by="TestResult.id")
    answers: Mapped[list[WrittenAnswer]] = relationship(back_populates="submission", cascade="all, delete-orphan",
                                                        order_by="WrittenAnswer.id")


class TestResult(Base):
    __tablename__ = "test_results"
    __test__ = False  # not a pytest class
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    test_id: Mapped[str] = mapped_column(String(300))
    exercise: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    points: Mapped[int] = mapped_column(Integer)
    max_points: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")
    duration: Mapped[float] = mapped_column(Float, default=0.0)

    submission: Mapped[Submission] = relationship(back_populates="tests")


class WrittenAnswer(Base):
    __tablename__ = "written_answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    question_id: Mapped[str] = mapped_column(String(200))
    max_points: Mapped[int] = mapped_column(Integer)
    answer: Mapped[str] = mapped_column(Text, default="")
    answer_sha256: Mapped[str] = mapped_column(String(64))
    answered: Mapped[bool] = mapped_column(Boolean)

    submission: Mapped[Submission] = relationship(back_populates="answers")


class ManualScore(Base):
    __tablename__ = "manual_scores"
    id: Mapped[int] = mapped_column(primary_key=True)
    student_id: Mapped[int] = mapped_column(ForeignKey("students.id"), index=True)
    assignment_slug: Mapped[str] = mapped_column(ForeignKey("assignments.slug"))
    question_id: Mapped[str] = mapped_column(String(200))
    answer_sha256: Mapped[str] = mapped_column(String(64))  # the answer this score is for
    points: Mapped[float] = mapped_column(Float)
    max_points: Mapped[int] = mapped_column(Integer)
    grader: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(40), default="cli")  # cli | web | nbgrader
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    student: Mapped[Student] = relationship()


class GradingFailure(Base):
    """A submission the grader itself could not grade (no score recorded; the next run tries it again)."""
    __tablename__ = "grading_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("grading_runs.id"), nullable=True)
    username: Mapped[str] = mapped_column(String(200))
    assignment_slug: Mapped[str] = mapped_column(String(100))
    commit_sha: Mapped[str] = mapped_column(String(80))
    error: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Gradebook:
    """The database file and its sessions."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{self.path}", future=True)
        event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        with self.Session.begin() as s:
            if s.get(Meta, "schema_version") is None:
                s.add(Meta(key="schema_version", value=SCHEMA_VERSION))

    def session(self) -> Session:
        return self.Session()

    def close(self) -> None:
        self.engine.dispose()

    # -- small helpers shared by collectors, exports and the report ---------------------------------------
    @staticmethod
    def student(s: Session, username: str, **fields) -> Student:
        st = s.scalar(select(Student).where(Student.username == username))
        if st is None:
            st = Student(username=username, **{k: v or "" for k, v in fields.items()})
            s.add(st)
            s.flush()
        else:
            for k, v in fields.items():
                if v and getattr(st, k) != v:
                    setattr(st, k, v)
        return st

    @staticmethod
    def assignment(s: Session, slug: str) -> Assignment:
        a = s.get(Assignment, slug)
        if a is None:
            from ..assignments import get_assignment

            spec = get_assignment(slug)
            a = Assignment(slug=slug, title=spec.title,
                           manual_points=sum(q.points for q in spec.written),
                           questions=[{"id": q.grade_id, "points": q.points, "prompt": q.prompt} for q in spec.written])
            s.add(a)
            s.flush()
        return a


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)
