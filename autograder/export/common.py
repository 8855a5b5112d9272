"""What the recording side (``snapshot.py``) and the public replay side (``replay.py``) share."""

from __future__ import annotations

import time

import torch

FORMAT = "llmkit/snapshot/v1"
FEEDBACK_LEVELS = ("full", "actual-only", "none")  # the student sees: everything / their own output / pass-fail
REF, HANDLE = "$llmkit_ref", "$llmkit_handle"  # tags inside recorded data: an earlier reply, an object


def calibrate() -> float:
    """Seconds for a fixed CPU workload (Python and torch), median of three: recorded at export, measured
    again at grading, so recorded time limits scale with the grading machine's speed."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i * i % 7
        a = torch.arange(40_000, dtype=torch.float64).reshape(200, 200) / 40_000
        for _ in range(20):
            a = (a @ a.T).tanh()
        times.append(time.perf_counter() - started)
    return sorted(times)[1]
