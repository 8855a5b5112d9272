#!/usr/bin/env python3
"""Classroom 50 autograder for one llmkit week, written by ``llmkit export classroom50``.

Classroom 50's runner starts this file with the student's checkout as the working directory and the
bundle's folder in ``$CLASSROOM50_BUNDLE_DIR`` (else this file's folder). It:

1. makes sure torch, numpy and hypothesis import (else installs ``requirements.txt`` into a virtual
   environment under ``$RUNNER_TEMP``, CPU-only PyTorch from PyTorch's index);
2. grades the week's notebook against the recorded snapshot in a child process (``llmkit_snapshot``),
   which writes each test's result as it finishes;
3. stops that child when the time limit in ``autograder.json`` runs out (Classroom 50 imposes none of its
   own inside its 15-minute job);
4. always writes ``./result.json`` (schema ``classroom50/result/v1``) and ``./release-body.md``: tests the
   child did not reach score 0 with the reason.

Exit status: 0 whenever grading completed, including a timeout; 1 only when the grader itself could not run
(its environment could not be installed, or it crashed) -- ``result.json`` is still written then.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

BUNDLE = Path(os.environ.get("CLASSROOM50_BUNDLE_DIR") or Path(__file__).resolve().parent).resolve()
CONFIG = json.loads((BUNDLE / "autograder.json").read_text())
MANIFEST = json.loads((BUNDLE / "snapshot" / "manifest.json").read_text())
CHECK = "import torch, numpy, hypothesis; assert torch.__version__.split('+')[0] == {!r}"


def log(message: str) -> None:
    print(f"llmkit autograder: {message}", flush=True)


def environment(deadline: float) -> str:
    """A Python that can grade: this one, or a virtual environment installed from requirements.txt."""
    want = CONFIG["torch"]
    if not os.environ.get("LLMKIT_FORCE_INSTALL") and _works(sys.executable, want):
        return sys.executable
    home = Path(os.environ.get("RUNNER_TEMP") or BUNDLE) / "llmkit-venv"
    python = home / "bin" / "python"
    if python.exists() and _works(str(python), want):
        return str(python)
    log(f"installing torch {want} (CPU) and the grader's requirements into {home}")
    venv.create(home, with_pip=True, clear=True)
    index = os.environ.get("LLMKIT_TORCH_INDEX", "https://download.pytorch.org/whl/cpu")
    for command in ([str(python), "-m", "pip", "install", "-q", f"torch=={want}", "--index-url", index],
                    [str(python), "-m", "pip", "install", "-q", "-r", str(BUNDLE / "requirements.txt")]):
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError("the time limit ran out while installing the grader's requirements")
        proc = subprocess.run(command, timeout=left, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"could not install the grader's requirements: {proc.stderr.strip()[-600:]}")
    return str(python)


def _works(python: str, want: str) -> bool:
    try:
        return subprocess.run([python, "-c", CHECK.format(want)], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def grade(python: str, deadline: float, progress: Path, out: Path) -> str | None:
    """Run the replay in a child process group; returns why it stopped early, or None."""
    env = dict(os.environ, PYTHONPATH=str(BUNDLE), PYTHONDONTWRITEBYTECODE="1")
    command = [python, "-m", "llmkit_snapshot.export.replay", str(Path.cwd()), str(BUNDLE / "snapshot"),
               "--feedback", CONFIG["feedback"], "--progress", str(progress), "--out", str(out)]
    child = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        code = child.wait(timeout=max(deadline - time.monotonic(), 1.0))
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return f"not graded: the autograder's time limit of {CONFIG['time_limit_s']} s was reached"
    if code != 0 or not out.is_file():
        raise RuntimeError(f"the grader stopped with exit status {code}")
    return None


def fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def write_outputs(records: dict[str, dict], stopped: str | None, failure: str | None) -> None:
    tests, seen = [], {}
    for t in MANIFEST["tests"]:
        r = records.get(t["id"])
        name = f"{t['exercise']}: {t['description']}"[:180]
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} ({seen[name]})"
        if r is None:
            why = failure or stopped or "not graded"
            r = {"status": "fail", "points": 0, "message": why}
        entry = {"test-name": name, "passed": r["status"] == "pass", "score": int(r["points"]),
                 "max-score": int(t["points"])}
        if r.get("message"):
            entry["message"] = r["message"][:2000]
        tests.append(entry)
    result = {
        "schema": "classroom50/result/v1",
        "classroom": os.environ.get("CLASSROOM", ""),
        "assignment": os.environ.get("ASSIGNMENT", ""),
        "submission": os.environ.get("SUBMISSION_TAG", ""),
        "commit": os.environ.get("COMMIT_URL", ""),
        "release": os.environ.get("RELEASE_URL", ""),
        "review": os.environ.get("REVIEW_URL", "") or os.environ.get("COMMIT_URL", ""),
        "datetime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "score": sum(t["score"] for t in tests),
        "max-score": sum(t["max-score"] for t in tests),
        "tests": tests,
    }
    Path("result.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"## {MANIFEST['title']}: {result['score']} / {result['max-score']} points", ""]
    if failure:
        lines += [f"**The grader could not run:** {failure}", ""]
    elif stopped:
        lines += [f"**{stopped}**; the tests it did not reach score 0.", ""]
    lines += ["| exercise | score |", "|---|---|"]
    by_exercise: dict[str, list[int]] = {}
    for t, spec in zip(tests, MANIFEST["tests"]):
        got = by_exercise.setdefault(spec["exercise"], [0, 0])
        got[0] += t["score"]
        got[1] += t["max-score"]
    lines += [f"| {ex} | {a} / {b} |" for ex, (a, b) in by_exercise.items()]
    failed = [t for t in tests if not t["passed"] and t.get("message")]
    if failed and CONFIG["feedback"] != "none":
        lines += ["", "### What to fix", ""]
        for t in failed:
            text = t["message"]
            lines += [f"**{t['test-name'].replace('|', '/')}** ({t['score']}/{t['max-score']})", "",
                      fence(text), text, fence(text), ""]
    if MANIFEST.get("not_covered"):
        left = sum(n["points"] for n in MANIFEST["not_covered"])
        lines += ["", f"<sub>{left} points of this week are graded by your course staff's own run, not here.</sub>"]
    Path("release-body.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    deadline = time.monotonic() + float(CONFIG["time_limit_s"])
    scratch = Path(os.environ.get("RUNNER_TEMP") or BUNDLE) / "llmkit-run"
    scratch.mkdir(parents=True, exist_ok=True)
    progress, out = scratch / "progress.jsonl", scratch / "result.json"
    for f in (progress, out):
        f.unlink(missing_ok=True)
    stopped = failure = None
    try:
        python = environment(deadline)
        stopped = grade(python, deadline, progress, out)
    except Exception as exc:  # noqa: BLE001  an infrastructure failure: still write a valid result
        failure = f"{exc}"[:1000]
        log(failure)
    records = {}
    if out.is_file():
        records = {t["id"]: t for t in json.loads(out.read_text())["tests"]}
    elif progress.is_file():
        for line in progress.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the last line of a killed child may be cut
            records[record["id"]] = record
    write_outputs(records, stopped, failure)
    log(f"wrote result.json ({sum(int(r['points']) for r in records.values())} points)")
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
