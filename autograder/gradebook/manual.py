"""Manual grading of the written questions: the queue, and scores with grader and comment.

The queue is made of the counted submissions' answers (``queries``): ``pending`` answers wait for a TA,
``graded`` ones have a score, ``unanswered`` ones score 0 on their own (a TA may still give points and a
comment). Scores are appended, never overwritten: ``ManualScore`` keeps who gave what, when and why.
"""

from __future__ import annotations

from sqlalchemy import select

from .models import Gradebook, ManualScore, Student
from .queries import ManualItem, StudentWeek, class_table


class ManualError(ValueError):
    pass


def queue(gb: Gradebook, slug: str, question: str | None = None, status: str | None = None,
          policy: str = "on-time") -> list[tuple[StudentWeek, ManualItem]]:
    with gb.session() as s:
        out = []
        for row in class_table(s, [slug], policy):
            if row.submission is None:
                continue
            for item in row.manual:
                if (question is None or item.question_id == question) and (status is None or item.status == status):
                    out.append((row, item))
        return out


def enter_score(gb: Gradebook, slug: str, username: str, question: str, points: float, grader: str,
                comment: str = "", source: str = "cli", policy: str = "on-time") -> ManualScore:
    """Score the answer of ``username``'s counted submission to ``question`` (appends a ManualScore)."""
    if not grader.strip():
        raise ManualError("a grader name is required (who gave this score)")
    with gb.Session.begin() as s:
        row = next((r for r in class_table(s, [slug], policy) if r.student.username == username), None)
        if row is None or row.submission is None:
            raise ManualError(f"{username} has no graded submission for {slug}")
        item = next((m for m in row.manual if m.question_id == question), None)
        if item is None:
            known = ", ".join(q["id"] for q in row.assignment.questions or []) or "none"
            raise ManualError(f"{slug} has no written question {question!r} (questions: {known})")
        if not 0 <= points <= item.max_points:
            raise ManualError(f"points must be between 0 and {item.max_points}")
        st = s.scalar(select(Student).where(Student.username == username))
        score = ManualScore(student_id=st.id, assignment_slug=slug, question_id=question,
                            answer_sha256=item.answer_sha256, points=float(points), max_points=item.max_points,
                            grader=grader.strip(), comment=comment, source=source)
        s.add(score)
    return score


def format_queue(items: list[tuple[StudentWeek, ManualItem]], width: int = 100) -> str:
    lines = []
    for row, item in items:
        head = f"{row.student.username}  {row.assignment.slug}  {item.question_id}  [{item.status}]"
        if item.points is not None:
            head += f"  {item.points:g}/{item.max_points}"
            if item.grader:
                head += f" by {item.grader}"
        lines.append(head)
        text = item.answer.strip() or "(no answer)"
        for para in text.splitlines()[:40]:
            lines.append("    " + para[:width])
        if item.comment:
            lines.append(f"    comment: {item.comment}")
        lines.append("")
    return "\n".join(lines) if lines else "nothing in the queue"


def interactive(gb: Gradebook, slug: str, grader: str, question: str | None = None, read=input, write=print) -> int:
    """Walk the pending answers one by one: points (empty to skip, q to stop), then a comment."""
    done = 0
    for row, item in queue(gb, slug, question, "pending"):
        write(format_queue([(row, item)]))
        answer = read(f"points for {row.student.username} (0-{item.max_points}, empty skips, q stops): ").strip()
        if answer.lower() == "q":
            break
        if not answer:
            continue
        try:
            points = float(answer)
            comment = read("comment (optional): ")
            enter_score(gb, slug, row.student.username, item.question_id, points, grader, comment)
            done += 1
        except (ValueError, ManualError) as exc:
            write(f"not saved: {exc}")
    write(f"{done} answer(s) scored")
    return done
