"""The worker that runs student code: what it can and cannot do, driven directly (no hidden suite)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from autograder.proxy import Student, StudentAbort, StudentError
from autograder.sandbox.protect import protect_trusted_files
from autograder.sandbox.supervisor import Limits, Sandbox
from autograder.student.notebook import extract

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_FILE = ROOT / "reference" / "attention.py"

CODE = f'''
import os, sys, subprocess, time
import torch

def env():
    return dict(os.environ)

def whoami():
    return os.getuid()

def read_reference():
    return open({str(REFERENCE_FILE)!r}).read()

def import_reference():
    import reference.attention
    return 1

def double(x):
    print("::error::injected", flush=True)
    return x * 2

def spin():
    while True:
        pass

def spawn_sleeper(token):
    child = subprocess.Popen(["sleep", token], start_new_session=True)
    if os.fork() == 0:  # and a double-forked grandchild
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", token + "1"])
        os._exit(0)
    return child.pid

def die():
    os._exit(7)

def freeze_soon():
    import signal, threading
    threading.Thread(target=lambda: (time.sleep(0.2), os.kill(os.getpid(), signal.SIGSTOP)), daemon=True).start()
    return 1

def huge():
    return torch.zeros(4 << 20)  # 16 MB reply

def raises():
    raise ValueError("bad shape")

SLOW_CONSTANT = time.sleep(60)  # a constant that never finishes: costs itself only

PAT_LEN = len("abc") * 2  # CONSTANT_CASE names keep computed values


class Box:
    def __init__(self, n):
        self.n = n
    def get(self):
        return self.n
'''


def make(code: str = CODE, **limits) -> tuple[Sandbox, Student]:
    nb = {"cells": [{"cell_type": "code", "source": code, "metadata": {}}]}
    extraction = extract(nb)
    statements = [{"source": s.source, "cell": s.cell, "line": s.line, "names": s.names} for s in extraction.statements]
    sandbox = Sandbox(statements, Limits(**limits))
    return sandbox, Student(sandbox, extraction)


@pytest.fixture(scope="module")
def student():
    protect_trusted_files()
    os.environ["LLMKIT_TEST_SECRET"] = "hunter2"
    sandbox, student = make(call_timeout_s=3, max_reply_bytes=1 << 20)
    yield student
    sandbox.close()
    os.environ.pop("LLMKIT_TEST_SECRET", None)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _processes_running(token: str) -> set[int]:
    """Live processes whose command line mentions ``token`` (unique to this test: other graders on the
    machine also run workers as nobody, so counting nobody's processes would be flaky)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if token.encode() in fh.read() and _alive(int(entry)):
                        pids.add(int(entry))
            except OSError:
                pass
    return pids


def test_round_trip_and_objects(student):
    x = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(student.double(x), x * 2)
    box = student.Box(41)
    assert box.method("get")() == 41


def test_a_slow_constant_costs_only_itself(student):
    assert student.whoami() >= 0  # the submission loaded although one statement hung
    errors = {e["names"][0]: e for e in student._sandbox.load_errors}
    assert errors["SLOW_CONSTANT"]["type"] == "TimeoutError"
    with pytest.raises(StudentAbort, match="SLOW_CONSTANT.*could not be defined.*TimeoutError"):
        student.SLOW_CONSTANT()


def test_environment_is_scrubbed(student):
    env = student.env()
    assert "LLMKIT_TEST_SECRET" not in env
    assert not any(k.startswith("GITHUB") for k in env)
    assert env["OMP_NUM_THREADS"] == "1"


def test_worker_identity_and_trusted_files(student):
    uid = student.whoami()
    with pytest.raises(StudentError, match="ImportError|ModuleNotFoundError"):
        student.import_reference()
    if os.getuid() == 0:
        assert uid == 65534
        with pytest.raises(StudentError, match="PermissionError"):
            student.read_reference()
    else:  # no second user to drop to: the result says so (see isolation())
        assert uid == os.getuid()


def test_student_errors_are_reported_with_type_and_message(student):
    with pytest.raises(StudentError, match=r"raises\(...\) raised ValueError: bad shape \(cell 1, line \d+"):
        student.raises()
    with pytest.raises(StudentAbort, match="not defined"):
        student.no_such_function()


def test_timeout_kills_and_recovers(student):
    started = time.monotonic()
    with pytest.raises(StudentAbort, match="timed out after 3 s"):
        student.spin()
    assert time.monotonic() - started < 10
    with pytest.raises(StudentAbort, match="not called again"):  # struck: no second 3 s wait
        student.spin()
    assert torch.equal(student.double(torch.ones(2)), torch.full((2,), 2.0))  # a fresh worker serves


def test_a_worker_that_stops_reading_cannot_hang_the_grader(student):
    assert student.freeze_soon() == 1
    time.sleep(0.5)  # the worker is now stopped: it reads nothing more
    started = time.monotonic()
    with pytest.raises(StudentAbort, match="timed out after 3 s"):
        student.env(torch.zeros(1 << 20))  # 4 MB of arguments: far more than a pipe buffer holds
    assert time.monotonic() - started < 10
    assert student.whoami() >= 0  # a fresh worker serves


def test_crash_is_contained(student):
    with pytest.raises(StudentAbort, match="exited with code 7"):
        student.die()
    assert student.whoami() >= 0


def test_oversized_reply_is_refused(student):
    with pytest.raises(StudentAbort, match="over the .* byte limit"):
        student.huge()


def test_children_do_not_outlive_the_worker():
    token = f"300.{os.getpid()}{time.monotonic_ns() % 10**6}"
    sandbox, other = make()
    try:
        sleeper = other.spawn_sleeper(token)
        time.sleep(0.2)
        assert _alive(sleeper) and len(_processes_running(token)) == 2  # the child and the orphaned grandchild
        worker = sandbox.proc.pid
    finally:
        sandbox.close()
    time.sleep(0.2)
    assert not _alive(worker)
    assert _processes_running(token) == set()


def test_isolation_is_reported(student):
    info = student._sandbox.isolation()
    assert info["level"] == ("unprivileged-user" if os.getuid() == 0 else "same-user")
    assert info["separate_process"] is True
