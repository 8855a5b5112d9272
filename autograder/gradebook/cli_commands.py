"""``llmkit grade-all`` and ``llmkit gradebook ...``: argument parsing only; the work is in the other modules,
imported when a command runs (so ``llmkit grade`` starts no slower)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import DEFAULT_DB


def add_parsers(sub) -> None:
    g = sub.add_parser("grade-all", help="grade a whole class (gh classroom folder or roster CSV) into the gradebook",
                       description="Grade every student's submission for one or more weeks and record it in the "
                                   "gradebook. Commits already graded are skipped: re-running is safe and resumes "
                                   "an interrupted run.")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--classroom", type=Path, help="folder from `gh classroom clone student-repos` "
                                                    "(<assignment>-submissions/<repo>/, or a folder of those)")
    src.add_argument("--roster", type=Path, help="CSV with github_username, repository_url [, assignment, deadline, "
                                                 "name, email, canvas_id, sis_user_id, sis_login_id, section]")
    g.add_argument("--assignment", "-a", action="append", required=True, help="week slug; repeat for several")
    g.add_argument("--deadline", help="ISO 8601, e.g. 2026-03-01T23:59:00-05:00 (no offset: UTC); graded: the last "
                                      "commit at or before it, and the latest commit after it, flagged late")
    g.add_argument("--no-late", action="store_true", help="do not grade commits after the deadline")
    g.add_argument("--students", type=Path, help="with --classroom: a roster CSV for names, emails and Canvas ids")
    _db_args(g)
    g.add_argument("--store", type=Path, help="clones and notebook snapshots (default: next to the database)")
    g.add_argument("--release", type=Path, default=None,
                   help="released student template to compare public tests and workflows with (default: release/)")
    g.add_argument("--workers", "-j", type=int, default=2, help="submissions graded at once (default 2)")
    g.add_argument("--mode", choices=["forkserver", "subprocess"], default="forkserver",
                   help="forkserver: processes forked from a pre-warmed server (fast); subprocess: `llmkit grade` each")
    g.add_argument("--call-timeout", type=float, default=10.0, help="seconds allowed per call of student code")
    g.add_argument("--memory-mb", type=int, default=4096, help="address-space limit of each student worker")
    g.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="as for llmkit grade")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.set_defaults(func=_grade_all)

    b = sub.add_parser("gradebook", help="the class gradebook: manual grading, exports, nbgrader, TA report")
    bs = b.add_subparsers(dest="gradebook_command", required=True)

    p = bs.add_parser("summary", help="students, weeks, submissions and runs in the gradebook")
    _db_args(p)
    p.set_defaults(func=_summary)

    m = bs.add_parser("manual", help="grade the written questions")
    ms = m.add_subparsers(dest="manual_command", required=True)
    ml = ms.add_parser("list", help="list answers (the grading queue)")
    _db_args(ml)
    ml.add_argument("--assignment", "-a", required=True)
    ml.add_argument("--question", "-q")
    ml.add_argument("--status", choices=["pending", "graded", "unanswered"])
    _policy(ml)
    ml.set_defaults(func=_manual_list)
    mscore = ms.add_parser("score", help="enter one score")
    _db_args(mscore)
    mscore.add_argument("--assignment", "-a", required=True)
    mscore.add_argument("--student", "-s", required=True, help="GitHub username")
    mscore.add_argument("--question", "-q", required=True)
    mscore.add_argument("--points", "-p", type=float, required=True)
    mscore.add_argument("--grader", "-g", required=True, help="who is grading")
    mscore.add_argument("--comment", "-c", default="")
    _policy(mscore)
    mscore.set_defaults(func=_manual_score)
    mg = ms.add_parser("grade", help="walk the pending answers interactively")
    _db_args(mg)
    mg.add_argument("--assignment", "-a", required=True)
    mg.add_argument("--question", "-q")
    mg.add_argument("--grader", "-g", required=True)
    mg.set_defaults(func=_manual_grade)

    w = bs.add_parser("serve", help="the grading queue as a local web page (127.0.0.1)")
    _db_args(w)
    w.add_argument("--assignment", "-a", action="append", help="weeks to show (default: all)")
    w.add_argument("--port", type=int, default=8765)
    _policy(w)
    w.set_defaults(func=_serve)

    e = bs.add_parser("export", help="class.csv, canvas.csv and one JSON per student")
    _db_args(e)
    e.add_argument("--out", type=Path, default=Path("gradebook/export"))
    e.add_argument("--assignment", "-a", action="append", help="weeks to export (default: all)")
    _policy(e)
    e.set_defaults(func=_export)

    a = bs.add_parser("assignment", help="set a week's deadline, Canvas column or GitHub Classroom names")
    _db_args(a)
    a.add_argument("--assignment", "-a", required=True)
    a.add_argument("--deadline")
    a.add_argument("--canvas-column", help="Canvas' column header, e.g. 'Week 2: Attention (1234)'")
    a.add_argument("--classroom-name")
    a.add_argument("--classroom-url")
    a.add_argument("--starter-code-url")
    a.set_defaults(func=_assignment)

    ne = bs.add_parser("nbgrader-export", help="write the written answers into an nbgrader course (gradebook.db)")
    _db_args(ne)
    ne.add_argument("--assignment", "-a", required=True)
    ne.add_argument("--course", type=Path, required=True, help="nbgrader course folder")
    _policy(ne)
    ne.set_defaults(func=_nb_export)
    ni = bs.add_parser("nbgrader-import", help="read manual scores and comments back from nbgrader")
    _db_args(ni)
    ni.add_argument("--assignment", "-a", required=True)
    ni.add_argument("--course", type=Path, required=True)
    ni.add_argument("--grader", default="nbgrader formgrader", help="recorded as the grader of imported scores")
    ni.set_defaults(func=_nb_import)

    r = bs.add_parser("report", help="the TA report: one HTML file that opens offline")
    _db_args(r)
    r.add_argument("--out", type=Path, default=Path("gradebook/report.html"))
    r.add_argument("--assignment", "-a", action="append")
    r.add_argument("--title", default="llmkit TA report")
    _policy(r)
    r.set_defaults(func=_report)

    bb = bs.add_parser("bench", help="grade a generated class and report submissions per minute and peak memory")
    bb.add_argument("--assignment", "-a", default="w02_attention")
    bb.add_argument("-n", type=int, default=200)
    bb.add_argument("--workers", "-j", type=int, default=2)
    bb.add_argument("--mode", choices=["forkserver", "subprocess"], default="forkserver")
    bb.add_argument("--keep", type=Path, help="folder for the class and gradebook (reused when it exists)")
    bb.add_argument("--json", action="store_true", help="print the result as JSON")
    bb.set_defaults(func=_bench)


def _db_args(p) -> None:
    p.add_argument("--db", type=Path, default=Path(DEFAULT_DB), help=f"gradebook database (default {DEFAULT_DB})")


def _policy(p) -> None:
    p.add_argument("--policy", choices=["on-time", "latest"], default="on-time",
                   help="which submission counts: the last on time (default) or the latest")


def _open(args):
    from .models import Gradebook

    return Gradebook(args.db)


def _weeks(slugs: list[str] | None) -> list[str] | None:
    if not slugs:
        return None
    from ..assignments import get_assignment

    for s in slugs:
        get_assignment(s)  # unknown: LookupError, exit 2
    return list(dict.fromkeys(slugs))


def _grade_all(args) -> int:
    from ..release import KIT_ROOT
    from . import collect, grade_all

    slugs = _weeks(args.assignment)
    deadline = collect.parse_deadline(args.deadline)
    gb = _open(args)
    store = args.store or args.db.parent / "store"
    problems = []

    def note(user, slug, why):
        problems.append((user, slug, why))
        print(f"grade-all: {user} {slug}: {why}", file=sys.stderr)

    if args.classroom:
        lookup = collect.roster_lookup(args.students)
        targets = [t for slug in slugs for t in collect.classroom_targets(args.classroom, slug, deadline, lookup)]
    else:
        targets = collect.roster_targets(args.roster, slugs, store, deadline, on_error=note)
    release = args.release or KIT_ROOT / "release"
    cands = collect.candidates(targets, store, release, include_late=not args.no_late, on_error=note)
    limits = {"call_timeout_s": args.call_timeout, "memory_bytes": args.memory_mb << 20}
    print(f"grade-all: {len(targets)} repositories, {len(cands)} commits to grade or already graded",
          file=sys.stderr)
    summary = grade_all.grade_candidates(gb, cands, args.workers, args.mode, limits, not args.no_progress,
                                         source=str(args.classroom or args.roster), device=args.device)
    print(f"graded {summary.graded}, already in the gradebook {summary.already_graded}, could not grade "
          f"{summary.failed} ({summary.seconds:.1f} s, {summary.per_minute:.1f} submissions/minute, peak memory "
          f"{summary.peak_memory_bytes >> 20} MiB) -> {args.db}")
    for user, slug, why in summary.failures:
        print(f"  could not grade {user} {slug}: {why}", file=sys.stderr)
    return 1 if summary.failed or problems else 0


def _summary(args) -> int:
    from sqlalchemy import func, select

    from .models import Assignment, GradingRun, Student, Submission

    gb = _open(args)
    with gb.session() as s:
        print(f"students: {s.scalar(select(func.count(Student.id)))}")
        for a in s.scalars(select(Assignment).order_by(Assignment.slug)):
            n = s.scalar(select(func.count(Submission.id)).where(Submission.assignment_slug == a.slug))
            late = s.scalar(select(func.count(Submission.id)).where(Submission.assignment_slug == a.slug,
                                                                    Submission.late))
            print(f"{a.slug}: {n} graded submissions ({late} late), {a.auto_points} + {a.manual_points} points, "
                  f"deadline {a.deadline or '-'}")
        for run in s.scalars(select(GradingRun).order_by(GradingRun.id)):
            print(f"run {run.id} {run.started_at:%Y-%m-%d %H:%M}: found {run.found}, graded {run.graded}, "
                  f"skipped {run.already_graded}, failed {run.failed}, {run.seconds:.0f} s, {run.mode}")
    return 0


def _manual_list(args) -> int:
    from .manual import format_queue, queue

    _weeks([args.assignment])
    print(format_queue(queue(_open(args), args.assignment, args.question, args.status, args.policy)))
    return 0


def _manual_score(args) -> int:
    from .manual import ManualError, enter_score

    _weeks([args.assignment])
    try:
        enter_score(_open(args), args.assignment, args.student, args.question, args.points, args.grader,
                    args.comment, "cli", args.policy)
    except ManualError as exc:
        print(f"llmkit gradebook manual score: {exc}", file=sys.stderr)
        return 2
    print(f"saved: {args.student} {args.assignment} {args.question} {args.points:g} by {args.grader}")
    return 0


def _manual_grade(args) -> int:
    from .manual import interactive

    _weeks([args.assignment])
    interactive(_open(args), args.assignment, args.grader, args.question)
    return 0


def _serve(args) -> int:
    from sqlalchemy import select

    from .models import Assignment
    from .webgrade import make_server

    gb = _open(args)
    slugs = _weeks(args.assignment)
    if not slugs:
        with gb.session() as s:
            slugs = [a.slug for a in s.scalars(select(Assignment).order_by(Assignment.slug))]
    server = make_server(gb, slugs, port=args.port, policy=args.policy)
    print(f"manual grading at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _export(args) -> int:
    from . import exports

    gb = _open(args)
    slugs = _weeks(args.assignment)
    n = exports.write_class_csv(gb, args.out / "class.csv", slugs, args.policy)
    canvas = exports.write_canvas_csv(gb, args.out / "canvas.csv", slugs, args.policy)
    k = exports.write_student_json(gb, args.out / "students", slugs, args.policy)
    print(f"{args.out / 'class.csv'}: {n} rows; {args.out / 'canvas.csv'}: {canvas['students']} students "
          f"(columns {', '.join(canvas['columns'])}); {args.out / 'students'}: {k} JSON files")
    if canvas["unmatched"]:
        print(f"note: {len(canvas['unmatched'])} student(s) have no Canvas ID, SIS User ID or SIS Login ID "
              f"(Canvas cannot match them; add them with grade-all --students ROSTER)", file=sys.stderr)
    return 0


def _assignment(args) -> int:
    from .collect import naive_utc, parse_deadline

    _weeks([args.assignment])
    gb = _open(args)
    with gb.Session.begin() as s:
        a = gb.assignment(s, args.assignment)
        if args.deadline:
            a.deadline = naive_utc(parse_deadline(args.deadline))
        for field in ("canvas_column", "classroom_name", "classroom_url", "starter_code_url"):
            if getattr(args, field) is not None:
                setattr(a, field, getattr(args, field))
        print(json.dumps({"slug": a.slug, "deadline": str(a.deadline or ""), "canvas_column": a.canvas_column,
                          "classroom_name": a.classroom_name, "classroom_url": a.classroom_url,
                          "starter_code_url": a.starter_code_url}, indent=1))
    return 0


def _nb_export(args) -> int:
    from .nbgrader_sync import export_to_nbgrader

    _weeks([args.assignment])
    counts = export_to_nbgrader(_open(args), args.course, args.assignment, args.policy)
    print(f"exported {counts['students']} submissions to {args.course / 'gradebook.db'}: {counts['needs_grading']} "
          f"answers need grading, {counts['copied_scores']} scores copied from llmkit")
    return 0


def _nb_import(args) -> int:
    from .nbgrader_sync import import_from_nbgrader

    _weeks([args.assignment])
    counts = import_from_nbgrader(_open(args), args.course, args.assignment, args.grader)
    print(f"imported {counts['imported']} manual scores ({counts['unchanged']} unchanged, {counts['ungraded']} not "
          f"yet graded in nbgrader)")
    return 0


def _report(args) -> int:
    from .ta_report import write_report

    path = write_report(_open(args), args.out, _weeks(args.assignment), args.policy, args.title)
    print(f"TA report: {path} (one file, opens offline)")
    return 0


def _bench(args) -> int:
    from .benchmark import format_result, run_benchmark

    _weeks([args.assignment])
    result = run_benchmark(args.assignment, args.n, args.workers, args.mode, args.keep, progress=not args.json)
    print(json.dumps(result, indent=1) if args.json else format_result(result))
    return 0
