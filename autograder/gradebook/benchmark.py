"""``llmkit gradebook bench``: grade a generated class for one week; print submissions per minute and peak memory.

The class (``synthetic``) mixes correct, buggy and broken submissions, one git repository per student as GitHub
Classroom lays them out. Timing covers collecting (reading commits, snapshotting notebooks) and grading, fork
server start-up included; peak memory is the largest sum of the proportional set sizes (PSS: shared pages
counted once) of the grading process tree, sampled twice a second.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def run_benchmark(slug: str = "w02_attention", n: int = 200, workers: int = 2, mode: str = "forkserver",
                  keep: Path | None = None, progress: bool = True) -> dict:
    from . import collect, grade_all, synthetic
    from .models import Gradebook

    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="llmkit-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    release = base / "release"
    if not release.is_dir():
        synthetic.build_week_release([slug], release)
    students = synthetic.generated_students(slug, n)
    start = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
    made = time.monotonic()
    root = base / f"{slug.replace('_', '-')}-submissions"
    if not root.is_dir():
        synthetic.make_class(base, slug, students, release, start, start + dt.timedelta(days=3))
    made = time.monotonic() - made
    db = base / f"bench-{mode}-{int(time.time())}.db"
    gb = Gradebook(db)
    t0 = time.monotonic()
    cands = collect.candidates(collect.classroom_targets(root, slug, None), base / "store", release)
    collected = time.monotonic() - t0
    summary = grade_all.grade_candidates(gb, cands, workers=workers, mode=mode, progress=progress,
                                         source=f"benchmark {n}")
    total = time.monotonic() - t0
    from sqlalchemy import select

    from .models import Student, Submission

    per_kind: dict[str, list[float]] = defaultdict(list)
    cpu = []
    with gb.session() as s:
        for user, dur, cpu_s in s.execute(select(Student.username, Submission.duration_s, Submission.cpu_s)
                                          .join(Student)):
            per_kind[students.get(user, "?")].append(dur)
            cpu.append(cpu_s)
    load = os.getloadavg()
    gb.close()
    return {
        "assignment": slug, "submissions": n, "graded": summary.graded, "failed": summary.failed,
        "workers": workers, "mode": mode, "make_class_s": round(made, 1), "collect_s": round(collected, 2),
        "grading_s": round(summary.seconds, 1), "total_s": round(total, 1),
        "per_minute": round(60 * summary.graded / total, 1) if total else 0.0,
        "peak_memory_mib": summary.peak_memory_bytes >> 20,
        "cpu_s_per_submission": round(statistics.mean(cpu), 2) if cpu else 0.0,
        # what two otherwise idle cores could do at that CPU cost (the measured rate depends on other load)
        "per_minute_two_idle_cores": round(2 * 60 / statistics.mean(cpu), 1) if cpu and statistics.mean(cpu) else 0.0,
        "load_average_1_5_15": [round(x, 2) for x in load],
        "per_kind_s": {k: round(statistics.mean(v), 2) for k, v in sorted(per_kind.items())},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "folder": str(base),
    }


def format_result(r: dict) -> str:
    lines = [f"machine: {r['machine']}",
             f"| measure | {r['assignment']}, {r['submissions']} submissions, {r['workers']} workers, {r['mode']} |",
             "|---|---|",
             f"| graded / failed | {r['graded']} / {r['failed']} |",
             f"| wall time (collect + grade, fork server start included) | {r['total_s']} s |",
             f"| **submissions per minute** | **{r['per_minute']}** |",
             f"| peak memory (PSS of the process tree) | {r['peak_memory_mib']} MiB |",
             f"| collecting (commits + snapshots) | {r['collect_s']} s |",
             f"| CPU time per submission (grading + worker processes) | {r['cpu_s_per_submission']} s |",
             f"| capacity of two idle cores at that CPU cost | {r['per_minute_two_idle_cores']} per minute |",
             f"| load average at the end (1, 5, 15 min) | {r['load_average_1_5_15']} |"]
    lines.append("| mean grade() time by kind | " + ", ".join(f"{k} {v} s" for k, v in r["per_kind_s"].items()) + " |")
    return "\n".join(lines)
