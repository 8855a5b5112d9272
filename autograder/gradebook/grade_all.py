"""``llmkit grade-all``: grade every collected submission in parallel and record each in one transaction.

Resumable by construction: a submission is written (with all its test results and written answers) in a single
transaction once its grading has completed, and a run first skips every (student, week, commit) already in the
gradebook. Killing a run loses at most the submissions being graded at that moment; the next run grades exactly
those that are missing. Grading the same commits again changes nothing.

Two ways to run each submission, both one fresh process per submission (student code in its own worker):

* ``forkserver`` (default): processes forked from a server that imported torch, pytest and hypothesis once
  (``prewarm``); about 3x the throughput of the other mode on two cores.
* ``subprocess``: ``llmkit grade`` per submission, exactly what CI runs; slower, for comparison or debugging.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .collect import Candidate, naive_utc
from .models import (GradingFailure, GradingRun, Gradebook, Repository, Submission, TestResult, WrittenAnswer,
                     utcnow)

PER_SUBMISSION_TIMEOUT_S = 900


@dataclass
class RunSummary:
    run_id: int
    found: int
    already_graded: int
    graded: int
    failed: int
    seconds: float
    peak_memory_bytes: int
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (user, week, error)

    @property
    def per_minute(self) -> float:
        return 60.0 * self.graded / self.seconds if self.seconds > 0 else 0.0


def answer_digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


# -- recording -----------------------------------------------------------------------------------------
def record(gb: Gradebook, cand: Candidate, data: dict, run_id: int | None, cpu_s: float = 0.0) -> bool:
    """Write one graded submission, its tests and answers, in one transaction. False if it was already there."""
    t = cand.target
    try:
        with gb.Session.begin() as s:
            st = gb.student(s, t.username, **t.student)
            a = gb.assignment(s, t.slug)
            a.auto_points = int(data["max_score"])
            if t.deadline is not None:
                a.deadline = naive_utc(t.deadline)
            repo = s.scalar(select(Repository).where(Repository.student_id == st.id,
                                                     Repository.assignment_slug == t.slug, Repository.url == t.url))
            if repo is None:
                repo = Repository(student_id=st.id, assignment_slug=t.slug, url=t.url, name=t.name)
                s.add(repo)
                s.flush()
            flags = list(cand.flags)
            if cand.late:
                flags.append({"kind": "late", "detail": f"{cand.late_by_s / 3600:.1f} h after the deadline"})
            flags += [{"kind": "locked_cell", "detail": w} for w in data.get("warnings", [])
                      if w.startswith("locked cell")]
            env = data.get("environment") or {}
            sub = Submission(
                student_id=st.id, assignment_slug=t.slug, repository_id=repo.id, commit_sha=cand.commit_sha,
                committed_at=cand.committed_at, late=cand.late, late_by_s=cand.late_by_s,
                notebook_sha256=cand.notebook_sha256 or data.get("submission_sha256", ""), status=data["status"],
                auto_score=int(data["score"]), auto_max=int(data["max_score"]),
                duration_s=float(data.get("duration_s", 0.0)), cpu_s=round(cpu_s, 3),
                device=str(env.get("device", "cpu")),
                host=platform.node(), flags=flags, result=data, run_id=run_id)
            sub.tests = [TestResult(test_id=x["id"], exercise=x["exercise"], description=x["description"],
                                    points=int(x["points"]), max_points=int(x["max_points"]), status=x["status"],
                                    message=x["message"], duration=float(x.get("duration", 0.0)))
                         for x in data["tests"]]
            sub.answers = [WrittenAnswer(question_id=q["id"], max_points=int(q["max_points"]), answer=q["answer"],
                                         answer_sha256=answer_digest(q["answer"]), answered=bool(q["answered"]))
                           for q in data.get("manual", [])]
            s.add(sub)
        return True
    except IntegrityError:  # graded meanwhile by another run
        return False


def graded_keys(gb: Gradebook) -> set[tuple[str, str, str]]:
    from .models import Student

    with gb.session() as s:
        rows = s.execute(select(Student.username, Submission.assignment_slug, Submission.commit_sha)
                         .join(Student, Submission.student_id == Student.id))
        return {tuple(r) for r in rows}


def register_targets(gb: Gradebook, candidates: list[Candidate]) -> None:
    """Students and weeks known even before anything is graded (and deadlines), in one transaction."""
    with gb.Session.begin() as s:
        for c in candidates:
            gb.student(s, c.target.username, **c.target.student)
            a = gb.assignment(s, c.target.slug)
            if c.target.deadline is not None:
                a.deadline = naive_utc(c.target.deadline)


# -- running -------------------------------------------------------------------------------------------
def _grade_child(notebook: str, slug: str, limits: dict, device: str, conn) -> None:
    """In a process forked from the fork server: grade, send ("ok", result) or ("error", why)."""
    from ..sandbox.supervisor import Limits, kill_descendants
    from . import prewarm

    scratch = tempfile.mkdtemp(prefix="llmkit-grade-all-")
    os.chdir(scratch)
    try:
        data = prewarm.grade_prewarmed(notebook, slug, Limits(**limits), device)
        kill_descendants()  # and reaped: their CPU time counts below
        conn.send(("ok", data, _cpu_seconds()))
    except BaseException as exc:  # noqa: BLE001  (the parent records it as a failure; the run goes on)
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"[:2000], _cpu_seconds()))
        except OSError:
            pass
    finally:
        conn.close()
        kill_descendants()
        os.chdir("/")
        shutil.rmtree(scratch, ignore_errors=True)


def _cpu_seconds() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class _ForkServerPool:
    def __init__(self, device: str = "cpu"):
        # Set before the fork server starts (it inherits them): one thread per process, hash seed as the worker's.
        os.environ.update(PYTHONHASHSEED="0", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.device = device
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["autograder.gradebook.forkserver_preload"])

    def start(self, cand: Candidate, limits: dict):
        r, w = self.ctx.Pipe(duplex=False)
        p = self.ctx.Process(target=_grade_child, args=(str(cand.snapshot), cand.target.slug, limits, self.device, w),
                             name=f"grade-{cand.target.username}")
        with _main_not_rerun():
            p.start()
        w.close()
        return _Running(p.pid, r, lambda: _collect_fork(p, r), lambda: _kill_tree(p.pid, p))


class _SubprocessPool:
    def __init__(self, device: str = "cpu"):
        self.device = device

    def start(self, cand: Candidate, limits: dict):
        out = Path(tempfile.mkdtemp(prefix="llmkit-grade-all-out-"))
        llmkit = Path(sys.executable).with_name("llmkit")
        cmd = [str(llmkit)] if llmkit.is_file() else [sys.executable, "-m", "autograder.cli"]
        cmd += ["grade", str(cand.snapshot), "-a", cand.target.slug, "--out", str(out / "out"), "--format", "json",
                "--call-timeout", str(limits["call_timeout_s"]), "--memory-mb", str(limits["memory_bytes"] >> 20)]
        if self.device != "cpu":
            cmd += ["--device", self.device]
        err = open(out / "stderr", "w+b")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, cwd=out,
                                start_new_session=True)
        r, w = multiprocessing.Pipe(duplex=False)

        def watch():  # turns the process' end into a readable connection, as the fork-server mode has
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            w.send(usage.ru_utime + usage.ru_stime)
            w.close()

        threading.Thread(target=watch, daemon=True).start()

        def collect():
            cpu = r.recv()
            r.close()
            err.seek(0)
            try:
                if proc.returncode == 0:
                    return "ok", json.loads((out / "out" / "result.json").read_text()), cpu
                return "error", f"llmkit grade exited {proc.returncode}: " \
                                f"{err.read().decode(errors='replace')[-1500:]}", cpu
            finally:
                err.close()
                shutil.rmtree(out, ignore_errors=True)

        return _Running(proc.pid, r, collect, lambda: _kill_tree(proc.pid, None))


@dataclass
class _Running:
    pid: int
    conn: object
    collect: object
    kill: object
    started: float = field(default_factory=time.monotonic)


@contextlib.contextmanager
def _main_not_rerun():
    """multiprocessing re-runs the parent's main script in each child it starts (to find the target there); the
    target here lives in this module, so hide the script's path while the process starts: nothing re-runs."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _collect_fork(p, r):
    try:
        kind, payload, *rest = r.recv()
    except (EOFError, OSError, ValueError):
        p.join(5)
        kind, payload, rest = "error", f"the grading process ended without a result (exit code {p.exitcode})", []
    r.close()
    p.join(60)
    if p.is_alive():
        _kill_tree(p.pid, p)
    return kind, payload, (rest[0] if rest else 0.0)


def _kill_tree(pid: int, p) -> None:
    from ..sandbox.supervisor import kill_descendants

    kill_descendants(pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if p is not None:
        p.join(5)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class MemorySampler:
    """Peak memory of this process and all its descendants: the sum of their PSS (shared pages counted once)."""

    def __init__(self, interval: float = 0.5):
        self.peak = 0
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss(os.getpid()))
            self._stop.wait(self._interval)


def tree_pss(root: int) -> int:
    """Sum of the PSS of ``root`` and its descendants (one pass over /proc for the parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    stat = fh.read()
                ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
        stack.extend(children.get(pid, ()))
    return total


def grade_candidates(gb: Gradebook, candidates: list[Candidate], workers: int = 2, mode: str = "forkserver",
                     limits: dict | None = None, progress: bool = True, source: str = "",
                     timeout_s: float = PER_SUBMISSION_TIMEOUT_S, on_result=None, device: str = "cpu") -> RunSummary:
    from tqdm import tqdm

    from ..sandbox.supervisor import Limits

    limits = {**Limits().describe(), **(limits or {})}
    limits = {k: limits[k] for k in Limits().describe()}
    register_targets(gb, candidates)
    done = graded_keys(gb)
    pending, seen = [], set()
    for c in candidates:
        if c.key not in done and c.key not in seen:
            seen.add(c.key)
            pending.append(c)
    with gb.Session.begin() as s:
        run = GradingRun(source=source, assignments=sorted({c.target.slug for c in candidates}), mode=mode,
                         workers=workers, host=platform.node(), found=len(candidates),
                         already_graded=len(candidates) - len(pending))
        s.add(run)
        s.flush()
        run_id = run.id
    summary = RunSummary(run_id, len(candidates), len(candidates) - len(pending), 0, 0, 0.0, 0)
    pool = (_ForkServerPool if mode == "forkserver" else _SubprocessPool)(device) if pending else None
    queue = collections.deque(pending)
    running: dict[object, tuple[_Running, Candidate]] = {}
    started = time.monotonic()
    bar = tqdm(total=len(pending), unit="sub", desc="grading", disable=not progress or not pending,
               dynamic_ncols=True, file=sys.stderr)
    try:
        with MemorySampler() as mem:
            while queue or running:
                while queue and len(running) < max(1, workers):
                    c = queue.popleft()
                    job = pool.start(c, limits)
                    running[job.conn] = (job, c)
                for conn in multiprocessing.connection.wait(list(running), timeout=1.0):
                    job, c = running.pop(conn)
                    kind, payload, cpu = job.collect()
                    _finish(gb, c, kind, payload, run_id, summary, on_result, cpu)
                    bar.set_postfix_str(f"{c.target.slug} {c.target.username}", refresh=False)
                    bar.update(1)
                now = time.monotonic()
                for conn, (job, c) in list(running.items()):
                    if now - job.started > timeout_s:
                        job.kill()
                        running.pop(conn)
                        _finish(gb, c, "error", f"grading took over {timeout_s:g} s and was stopped", run_id, summary,
                                on_result)
                        bar.update(1)
        summary.peak_memory_bytes = mem.peak
    finally:
        for job, _ in running.values():
            job.kill()
        bar.close()
        summary.seconds = time.monotonic() - started
        with gb.Session.begin() as s:
            run = s.get(GradingRun, run_id)
            run.finished_at, run.graded, run.failed = utcnow(), summary.graded, summary.failed
            run.seconds, run.peak_memory_bytes = round(summary.seconds, 3), summary.peak_memory_bytes
    return summary


def _finish(gb, c: Candidate, kind: str, payload, run_id, summary: RunSummary, on_result, cpu: float = 0.0) -> None:
    if kind == "ok":
        if record(gb, c, payload, run_id, cpu):
            summary.graded += 1
    else:
        summary.failed += 1
        summary.failures.append((c.target.username, c.target.slug, str(payload)))
        with gb.Session.begin() as s:
            s.add(GradingFailure(run_id=run_id, username=c.target.username, assignment_slug=c.target.slug,
                                 commit_sha=c.commit_sha, error=str(payload)))
    if on_result:
        on_result(c, kind, payload)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
