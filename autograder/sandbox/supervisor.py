"""The trusted side of the sandbox: start, feed, time and kill the worker that runs student code.

The grader never imports student code. It sends requests (call this function with these tensors) over a
pipe and gets data back (``codec``); a call that overruns its time limit, a crash, or an oversized
reply kills the worker and everything it started, and the next request starts a fresh one.
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

WORKER = Path(__file__).with_name("worker.py")
NOBODY = 65534


@dataclass(frozen=True)
class Limits:
    call_timeout_s: float = 10.0  # one call of student code
    load_timeout_s: float = 60.0  # running the submission's definitions (each statement: 5 s)
    start_timeout_s: float = 120.0  # interpreter start + import torch
    memory_bytes: int = 4 << 30  # address space of the worker (RLIMIT_AS)
    cpu_seconds: int = 600  # CPU time of one worker, a backstop behind the wall-clock limits
    file_bytes: int = 16 << 20  # largest file student code may write
    max_reply_bytes: int = 256 << 20  # largest reply the grader will read

    def describe(self) -> dict:
        return asdict(self)


class WorkerDied(Exception):
    """The worker exited, was killed, or broke the protocol. ``reason`` says which, for students."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CallTimeout(WorkerDied):
    pass


class GraderFailure(RuntimeError):
    """The worker could not even start (before any student code ran): the grader's fault, not the student's."""


def _set_subreaper() -> bool:
    """Orphans of the worker (double-forked children) get re-parented to us, so we can reap them. And
    the grader becomes non-dumpable: a same-user worker cannot open /proc/<grader>/fd/* or mem."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        if ppid == pid:
            kids.append(int(entry))
    return kids


def kill_descendants(root: int | None = None) -> None:
    """SIGKILL every descendant of ``root`` (default: this process), repeating until none is left."""
    root = os.getpid() if root is None else root
    for _ in range(50):
        found = []
        stack = [root]
        while stack:
            for kid in _children_of(stack.pop()):
                found.append(kid)
                stack.append(kid)
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in found:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.01)


def isolation_plan() -> tuple[int, str]:
    """(uid to drop to or -1, level name). Root can drop to nobody; anyone else stays themselves."""
    if os.getuid() == 0:
        return NOBODY, "unprivileged-user"
    return -1, "same-user"


class Sandbox:
    """One worker process at a time, restarted on demand, holding one loaded submission."""

    def __init__(self, statements: list[dict], limits: Limits = Limits(), parts: tuple[str, ...] = ()):
        self.statements = statements
        self.parts = tuple(parts)  # topics of the kit's trusted stand-ins (sandbox/parts/) the worker loads
        self.limits = limits
        self.proc: subprocess.Popen | None = None
        self.workdir: tempfile.TemporaryDirectory | None = None
        self.load_errors: list[dict] = []
        self.info: dict = {}
        self.restarts = 0
        self._next_id = 0
        self._loaded = False
        self.subreaper = _set_subreaper()
        self.failure: str | None = None  # set when the worker cannot start at all
        self.drop_uid, self.level = isolation_plan()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the worker; returns at once (it imports torch while the grader does its own set-up)."""
        if self.proc is not None:
            return
        self.workdir = tempfile.TemporaryDirectory(prefix="llmkit-worker-")
        if self.drop_uid >= 0:
            os.chown(self.workdir.name, self.drop_uid, self.drop_uid)
        os.chmod(self.workdir.name, 0o700)
        req_r, self._req_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": self.workdir.name,
            "TMPDIR": self.workdir.name,
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONIOENCODING": "utf-8",
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": self.workdir.name,
        }
        limits = self.limits

        def preexec():  # runs in the child between fork and exec
            os.setsid()
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        self.proc = self._spawn(
            [sys.executable, "-I", "-B", str(WORKER), str(req_r), str(resp_w), str(self.drop_uid),
             ",".join(self._imported_modules()), ",".join(self.parts) or "-"],
            pass_fds=(req_r, resp_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.workdir.name,
            env=env,
            preexec_fn=preexec,
            close_fds=True,
        )
        os.close(req_r)
        os.close(resp_w)
        os.set_blocking(self._req_w, False)
        self._loaded = False
        self._started_at = time.monotonic()

    def _spawn(self, argv: list[str], **popen_kwargs) -> subprocess.Popen:
        """Start the worker process. A subclass may launch it another way (the class grader forks
        workers from a pre-warmed server) as long as it honours the same arguments and limits."""
        return subprocess.Popen(argv, **popen_kwargs)

    def _imported_modules(self) -> list[str]:
        """Modules the submission imports at top level (the worker preloads the known ones)."""
        import ast

        names = set()
        for st in self.statements:
            try:
                node = ast.parse(st["source"]).body[0]
            except (SyntaxError, IndexError):
                continue
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        return sorted(n for n in names if n.replace(".", "").replace("_", "").isalnum())

    def _ensure_loaded(self) -> None:
        if self.proc is None:
            self.start()
        if self._loaded:
            return
        remaining = self.limits.start_timeout_s - (time.monotonic() - self._started_at)
        try:
            ready = self._receive(max(remaining, 0.1), "starting Python and importing torch")
        except WorkerDied as exc:
            self.failure = (f"the student worker could not start ({exc.reason.split(' (')[0]}); "
                            "check that torch imports and that the memory limit is not too low")
            raise GraderFailure(self.failure) from None
        self.info = ready.get("ready", {}) if isinstance(ready, dict) else {}
        if not self.info:
            self._fail("the worker did not start properly")
        reply = self._request({"op": "load", "statements": self.statements}, self.limits.load_timeout_s,
                              "running the submission's definitions")
        self.load_errors = reply["ok"]["errors"]
        self._loaded = True

    def close(self) -> None:
        """Kill the worker and everything it started; safe to call at any time."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait()
            for fd in (self._req_w, self._resp_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.proc = None
        kill_descendants()
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None
        self._loaded = False

    def _fail(self, reason: str, timeout: bool = False):
        self.close()
        self.restarts += 1
        raise (CallTimeout if timeout else WorkerDied)(reason)

    # -- protocol ----------------------------------------------------------------------------------
    def _write_all(self, data: bytes, deadline: float, timeout: float, doing: str) -> None:
        """Write a request without ever blocking past the deadline (the pipe is non-blocking): a worker
        that stops reading, say because a student thread holds the GIL, cannot hang the grader."""
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"timed out after {timeout:g} s while {doing} (the worker stopped reading)", timeout=True)
            _, ready, _ = select.select([], [self._req_w], [], left)
            if not ready:
                continue
            try:
                view = view[os.write(self._req_w, view[: 1 << 16]) :]
            except BlockingIOError:
                continue
            except OSError:  # the worker is gone (EPIPE)
                code = self.proc.wait() if self.proc else None
                self._fail(_exit_reason(code, doing))

    def _read_exact(self, n: int, deadline: float, timeout: float, doing: str) -> bytes:
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"timed out after {timeout:g} s while {doing}", timeout=True)
            ready, _, _ = select.select([self._resp_r], [], [], left)
            if not ready:
                continue
            b = os.read(self._resp_r, min(n - got, 1 << 20))
            if not b:
                code = self.proc.wait() if self.proc else None
                self._fail(_exit_reason(code, doing))
            chunks.append(b)
            got += len(b)
        return b"".join(chunks)

    def _receive(self, timeout: float, doing: str, deadline: float | None = None):
        deadline = deadline or time.monotonic() + timeout
        (n,) = struct.unpack("<Q", self._read_exact(8, deadline, timeout, doing))
        if n > self.limits.max_reply_bytes:
            self._fail(f"the reply while {doing} was {n} bytes, over the {self.limits.max_reply_bytes} byte limit")
        from . import codec  # imported late: torch loads while the worker is already starting

        try:
            return codec.decode(self._read_exact(n, deadline, timeout, doing))
        except codec.CodecError as exc:
            self._fail(f"the worker sent an unreadable reply while {doing} ({exc})")

    def _request(self, msg: dict, timeout: float, doing: str):
        self._next_id += 1
        msg["id"] = self._next_id
        from . import codec

        data = codec.encode(msg)
        deadline = time.monotonic() + timeout  # one budget for sending the request and getting the reply
        self._write_all(struct.pack("<Q", len(data)) + data, deadline, timeout, doing)
        reply = self._receive(timeout, doing, deadline)
        if not isinstance(reply, dict) or reply.get("id") != msg["id"]:
            self._fail(f"the worker sent a reply out of order while {doing}")
        return reply

    def request(self, msg: dict, doing: str, timeout: float | None = None):
        """Send one request to a loaded worker; returns the raw reply dict (``ok``/``error``/``missing``)."""
        self._ensure_loaded()
        return self._request(msg, timeout or self.limits.call_timeout_s, doing)

    def isolation(self) -> dict:
        return {
            "level": self.info.get("isolation", self.level),
            "worker_uid": self.info.get("uid"),
            "separate_process": True,
            "reaps_orphans": self.subreaper,
            "note": (
                "student code ran as an unprivileged user that cannot read the reference or hidden tests"
                if self.info.get("isolation", self.level) == "unprivileged-user"
                else "student code ran in a separate process as the grading user (not root): it could read "
                "files that user can read; run the grader as root for the stronger isolation"
            ),
        }


def _exit_reason(code: int | None, doing: str) -> str:
    if code is None:
        return f"the worker stopped while {doing}"
    if code < 0:
        sig = signal.Signals(-code).name
        hint = {
            "SIGKILL": " (killed: often memory over the limit)",
            "SIGSEGV": " (segmentation fault)",
            "SIGXCPU": " (CPU time limit)",
            "SIGXFSZ": " (wrote a file over the size limit)",
        }.get(sig, "")
        return f"the worker was killed by {sig}{hint} while {doing}"
    return f"the worker exited with code {code} while {doing} (did the code call os._exit or exit the process?)"
