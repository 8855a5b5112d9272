"""``llmkit export ...``: argument parsing only; each command imports its module when it runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

FEEDBACK = ("full", "actual-only", "none")


def _week(p) -> None:
    p.add_argument("--week", "-w", "--assignment", "-a", dest="week", required=True,
                   help="week slug, e.g. w02_attention")


def _published(p) -> None:
    p.add_argument("--solutions-published-through", metavar="WEEK", dest="published_through",
                   help="the last week whose solutions students may already read (its deadline has passed): the "
                        "public bundle may then carry the kit's implementations of that week and earlier ones "
                        "(week 3's GPT, for weeks 4-6), which covers more tests")


def _published_weeks(args) -> tuple[str, ...]:
    from ..assignments import all_assignments

    last = args.published_through
    if last is None:
        return ()
    if last not in all_assignments():
        return (last,)  # refused with the list of weeks
    return tuple(w for w in sorted(all_assignments()) if w <= last)


def add_parsers(sub) -> None:
    e = sub.add_parser("export", help="bundles for other platforms (Classroom 50, Gradescope) and official-grading "
                                      "helpers", description="Export a week for another platform, or help the official grading workflow.")
    es = e.add_subparsers(dest="export_command", required=True)

    s = es.add_parser("snapshot", help="record a week's hidden suite on the solution as data (no reference code)")
    _week(s)
    s.add_argument("--out", type=Path, required=True, help="folder for manifest.json and snapshot.bin")
    s.add_argument("--feedback", choices=FEEDBACK, default="full")
    _published(s)
    s.set_defaults(func=_snapshot)

    r = es.add_parser("replay", help="grade a notebook against a snapshot folder (what a snapshot bundle does)")
    r.add_argument("submission", help="a notebook, or a repository holding <week>/<notebook>")
    r.add_argument("--snapshot", type=Path, required=True)
    r.add_argument("--feedback", choices=FEEDBACK)
    r.add_argument("--out", type=Path, help="write the result JSON here")
    r.set_defaults(func=_replay)

    c = es.add_parser("classroom50", help="write autograders/<slug>/ and the assignments.json entry for Classroom 50")
    _week(c)
    c.add_argument("--classroom", type=Path, required=True,
                   help="the classroom's folder in your Classroom 50 config repository (holds assignments.json)")
    c.add_argument("--slug", help="Classroom 50 slug (default: the week with '-' for '_', e.g. w02-attention)")
    c.add_argument("--feedback", choices=FEEDBACK, default="full",
                   help="full: input, output and expected; actual-only: input and the student's output; none")
    c.add_argument("--time-limit", type=int, default=600, help="seconds for installing and grading (30-840)")
    c.add_argument("--runs-on", action="append", help="runner label; repeat for several, e.g. self-hosted gpu")
    c.add_argument("--python", default="3.11", help="runtime Python version")
    _published(c)
    c.set_defaults(func=_classroom50)

    o = es.add_parser("otter", help="an otter-grader autograder zip for Gradescope (live hidden suite)")
    _week(o)
    o.add_argument("--out", type=Path, required=True, help="the zip to write")
    o.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    o.add_argument("--python", default="3.11", help="Python version of the grading image")
    o.set_defaults(func=_otter)

    sh = es.add_parser("roster-shard", help="one shard of a roster CSV (for a job matrix)")
    sh.add_argument("--roster", type=Path, required=True)
    sh.add_argument("--shards", type=int, required=True)
    sh.add_argument("--index", type=int, required=True)
    sh.add_argument("--out", type=Path, required=True)
    sh.set_defaults(func=_shard)

    m = es.add_parser("plan", help="the official grading matrix: weeks x roster shards, as JSON")
    m.add_argument("--roster", type=Path, required=True)
    m.add_argument("--deadlines", type=Path, help='JSON {"week": "ISO 8601 deadline"}; scheduled runs grade the '
                                                  "weeks whose deadline passed within --within-hours")
    m.add_argument("--weeks", default="", help="space-separated week slugs (a manual run); empty: by deadline")
    m.add_argument("--deadline", default="", help="deadline for --weeks (default: their entry in --deadlines)")
    m.add_argument("--within-hours", type=float, default=26.0)
    m.add_argument("--now", help="ISO 8601 instant to plan for (default: now)")
    m.add_argument("--per-shard", type=int, default=40, help="students per shard (default 40)")
    m.add_argument("--max-shards", type=int, default=20, help="at most this many shards per week (default 20)")
    m.add_argument("--github-output", type=Path, help="also append matrix=... and any=... to this file")
    m.set_defaults(func=_plan)

    g = es.add_parser("merge-gradebooks", help="merge shard gradebooks into one")
    g.add_argument("--out", type=Path, required=True, help="the merged gradebook (created or added to)")
    g.add_argument("shards", type=Path, nargs="+")
    g.set_defaults(func=_merge)


def _snapshot(args) -> int:
    from . import snapshot

    try:
        data = snapshot.record(args.week, published=_published_weeks(args))
    except snapshot.ExportError as exc:
        print(f"llmkit export snapshot: {exc}", file=sys.stderr)
        return 1
    manifest = snapshot.write(data, args.out, args.feedback)
    print(f"{args.out}: {len(manifest['tests'])} tests, {manifest['max_score']} of {manifest['live_max_score']} "
          f"points, {manifest['snapshot_bytes']} bytes")
    for n in manifest["not_covered"]:
        print(f"  not covered ({n['points']} points): {n['id']}: {n['reason']}")
    return 0


def _replay(args) -> int:
    from .replay import grade_snapshot

    result = grade_snapshot(Path(args.submission), args.snapshot, feedback=args.feedback)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    for t in result["tests"]:
        print(f"{'PASS' if t['status'] == 'pass' else 'FAIL'}  {t['points']}/{t['max_points']}  {t['id']}")
    print(f"{result['assignment']}: {result['score']} / {result['max_score']} (snapshot)")
    return 0


def _classroom50(args) -> int:
    from . import classroom50
    from .snapshot import ExportError

    try:
        out = classroom50.export(args.week, args.classroom, c50_slug=args.slug, feedback=args.feedback,
                                 time_limit_s=args.time_limit, runs_on=args.runs_on, python=args.python,
                                 published=_published_weeks(args))
    except ExportError as exc:
        print(f"llmkit export classroom50: {exc}", file=sys.stderr)
        return 1
    print(f"{out['folder']}: {out['max_score']} of {out['live_max_score']} points as a snapshot, "
          f"{out['tarball_bytes'] / 1e6:.2f} MB as a tarball; assignments.json entry {out['entry']['slug']!r}")
    for n in out["not_covered"]:
        print(f"  not in the snapshot ({n['points']} points): {n['id']}")
    return 0


def _otter(args) -> int:
    from . import otter

    out = otter.export(args.week, args.out, device=args.device, python=args.python)
    print(f"{out['zip']}: {out['tests']} hidden tests, {out['points']} points, exercises {', '.join(out['exercises'])}")
    return 0


def _shard(args) -> int:
    from .official import shard_roster

    n = shard_roster(args.roster, args.shards, args.index, args.out)
    print(f"{args.out}: {n} students (shard {args.index + 1} of {args.shards})")
    return 0


def _plan(args) -> int:
    from .official import plan

    include = plan(args.roster, args.deadlines, args.weeks.split(), args.deadline, args.within_hours, args.now,
                   args.per_shard, args.max_shards)
    text = json.dumps(include)
    print(text)
    if args.github_output:
        with open(args.github_output, "a") as fh:
            fh.write(f"matrix={text}\nany={'true' if include else 'false'}\n")
    return 0


def _merge(args) -> int:
    from .official import merge_gradebooks

    counts = merge_gradebooks(args.out, args.shards)
    print(f"{args.out}: merged {counts['shards']} shard(s): {counts['submissions']} submissions "
          f"({counts['skipped']} already there), {counts['students']} new students, {counts['failures']} failures")
    return 0
