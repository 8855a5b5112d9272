"""How long does grading one submission take, and where does the time go?

Runs ``llmkit grade`` on the week's solution notebook (as CI would: a fresh process each time) and
reports the median wall time over several runs, next to the fixed costs it contains: starting Python,
and importing torch (which the grader and the student worker each do, in parallel).

    python benchmarks/grade_speed.py [--runs 5] [--assignment w02_attention]

Record the printed table in BENCHMARKS.md with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--assignment", default="w02_attention")
    parser.add_argument("--notebook", default=None, help="default: the instructor solution notebook")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from autograder.assignments import get_assignment

    notebook = args.notebook or str(ROOT / "assignments" / args.assignment / get_assignment(args.assignment).notebook)
    py = sys.executable
    timed([py, "-c", "import torch"])  # warm the page cache so the first run is not an outlier
    start = statistics.median(timed([py, "-c", "pass"]) for _ in range(args.runs))
    torch_import = statistics.median(timed([py, "-c", "import torch"]) for _ in range(args.runs))
    walls, inner, calls = [], [], 0
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.runs):
            walls.append(timed([py, "-m", "autograder.cli", "grade", notebook, "-a", args.assignment, "--out", out]))
            data = json.loads((Path(out) / "result.json").read_text())
            inner.append(data["duration_s"])
            calls = data["student_calls"]
            score = f"{data['score']}/{data['max_score']}"
    wall = statistics.median(walls)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {data['environment']['torch']}")
    print(f"assignment {args.assignment}: score {score}, {calls} calls into the student's worker")
    print(f"| measure | median of {args.runs} |\n|---|---|")
    print(f"| `llmkit grade` wall time | {wall:.2f} s |")
    print(f"| of which inside grade() (after the CLI's imports) | {statistics.median(inner):.2f} s |")
    print(f"| Python start (`python -c pass`) | {start:.2f} s |")
    print(f"| `import torch` alone | {torch_import:.2f} s (done by the grader and, in parallel, by the worker) |")
    print(f"| start + torch, share of the wall time | {(start + torch_import) / wall:.0%} |")


if __name__ == "__main__":
    main()
