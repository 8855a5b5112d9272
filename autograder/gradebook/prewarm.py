"""Import-once grading: every submission in its own fresh processes, without importing torch each time.

``llmkit grade`` costs about 6 CPU-seconds for the attention week, two thirds of it importing torch, pytest and
hypothesis: once in the grader and once in the student's worker. For a class, ``grade_all`` uses
``multiprocessing``'s fork server instead: one server process imports and warms up all of that once
(``forkserver_preload``), and each submission gets

* a **grading process**, forked from the server: it runs the engine's ``grading.grade()`` unchanged, and
* a **student worker**, forked by that grading process as its first act (before it reads the assignment, the
  hidden suite, the reference or the instructor's notebook, so the worker's memory holds none of them). It
  waits, still holding nothing of the submission, until the engine's ``Sandbox.start()`` launches it.

The launch goes through the engine's own code: ``Sandbox.start()`` builds the worker command, environment,
pipes and limits as always, and calls its ``_spawn`` hook; here ``PrewarmedSandbox._spawn`` answers with ``ForkLaunch``,
which hands the pipes (``SCM_RIGHTS``), command line, environment and folder to the waiting worker. The worker
then does what ``Popen``'s ``preexec_fn`` and ``python -I -B`` would have done (own session, resource limits,
only the pipes open, standard streams on ``/dev/null``, scrubbed environment, isolated ``sys.path``, no kit
modules importable) and runs the engine's ``worker.py`` as ``__main__`` with that command line: the same
``main()`` that drops privileges, blocks kit imports and serves requests. Later workers of the same
submission (after a time-out or crash) start the ordinary way (``python -I worker.py``), because by then the
grading process holds the hidden suite.

Anything the shim does not recognise (a changed ``Popen`` call in the engine) falls back to the real ``Popen``.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import signal
import socket
import subprocess
import sys
from pathlib import Path

KIT_ROOT = Path(__file__).resolve().parent.parent.parent
SECRET_PREFIXES = ("reference", "autograder.suites", "tests", "parts")  # never in the server's memory
KIT_PACKAGES = ("autograder", "reference", "tests", "parts")
_NO_FORK: str | None = None  # set by forkserver_preload when forking is not safe; then workers start as usual
_CLEAN_PATH: list[str] | None = None  # sys.path of `python -I`, measured once by the server


def warm() -> None:
    """Import and warm up what both sides need; runs once, in the fork server."""
    global _NO_FORK, _CLEAN_PATH
    import runpy
    import threading

    import hypothesis  # noqa: F401
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import torch  # noqa: F401

    from .. import banned, checksums, compare, grading, proxy, report  # noqa: F401
    from ..sandbox import codec, supervisor  # noqa: F401

    # The worker script's module-level imports and its warm-up (the lazy parts of torch), as a namespace
    # of its own: the worker runs it again as __main__, which then finds all of it imported.
    ns = runpy.run_path(str(supervisor.WORKER), run_name="llmkit_prewarm_worker")
    ns["_warm_up"]()
    ns["_preload"](list(ns.get("LIBRARIES", ())))
    _CLEAN_PATH = json.loads(subprocess.run(
        [sys.executable, "-I", "-c", "import sys, json; print(json.dumps(sys.path))"],
        capture_output=True, text=True, check=True).stdout)
    # Everything imported so far lives as long as the server: move it out of the garbage collector's sight, so
    # the collections pytest runs at the end of each session scan only what that submission created (0.5 s
    # less per submission), and forked processes do not copy pages merely to update gc headers.
    gc.collect()
    gc.freeze()
    secret = sorted(m for m in sys.modules if m.startswith(SECRET_PREFIXES))
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else threading.active_count()
    if secret:
        _NO_FORK = f"the fork server imported trusted modules ({', '.join(secret[:3])})"
    elif threads != 1:
        _NO_FORK = f"the fork server runs {threads} threads (forking it is unsafe)"


class ForkedWorker:
    """The ``Popen`` stand-in for a worker forked from this process: ``pid``, ``wait``, ``kill``, ``poll``."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self.args = ["<pre-warmed worker>"]

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:  # reaped elsewhere: it is gone, how is unknown
                return None
        return self.returncode

    def kill(self):
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    terminate = kill


class Prefork:
    """A worker forked now, from a process holding nothing secret, waiting to be launched (or discarded)."""

    def __init__(self):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the worker-to-be
            code = 70
            try:
                parent.close()
                code = _serve_launch(child)
            finally:
                os._exit(code)
        child.close()
        self.sock: socket.socket | None = parent
        self.proc = ForkedWorker(pid)
        self.used = False

    def take(self) -> Prefork | None:
        if self.used or self.sock is None:
            return None
        self.used = True
        return self

    def launch(self, spec: dict, fds: list[int]) -> ForkedWorker:
        data = json.dumps(spec).encode()
        socket.send_fds(self.sock, [len(data).to_bytes(8, "little")], fds)
        self.sock.sendall(data)
        self.sock.close()
        self.sock = None
        return self.proc

    def discard(self) -> None:
        """Kill the waiting worker if it was never launched (a rejected notebook needs none)."""
        if self.sock is not None:
            self.sock.close()  # it reads EOF and exits
            self.sock = None
        if not self.used:
            self.proc.kill()
            self.proc.wait()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = sock.recv(n - got)
        if not b:
            raise EOFError
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _serve_launch(sock: socket.socket) -> int:
    """In the forked worker: wait for the launch, become what ``Popen(preexec_fn=...)`` + ``python -I -B`` makes,
    then run the engine's worker script as ``__main__``. Returns the exit code."""
    import runpy

    os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN if sig == signal.SIGPIPE else signal.SIG_DFL)
    _close_all_but({sock.fileno()})
    try:
        msg, fds, _, _ = socket.recv_fds(sock, 8, 8)
        if not msg:
            return 0  # discarded before use
        spec = json.loads(_recv_exact(sock, int.from_bytes(msg, "little")))
    except (EOFError, OSError, ValueError):
        return 0
    sock.close()
    limits = spec["limits"]
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # The pipes under the numbers the command line names, and nothing else open.
    high = [os.dup2(fd, 900 + i, inheritable=False) for i, fd in enumerate(fds)]
    for fd in fds:
        if fd not in high:
            os.close(fd)
    for fd, target in zip(high, spec["pass_fds"]):
        os.dup2(fd, target, inheritable=False)
        os.close(fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(devnull, std)
    if devnull > 2:
        os.close(devnull)
    os.chdir(spec["cwd"])
    os.environ.clear()
    os.environ.update(spec["env"])
    # What `python -I -B` gives: no bytecode written, the isolated path, nothing of the kit importable by name.
    sys.dont_write_bytecode = True
    if _CLEAN_PATH:
        sys.path[:] = list(_CLEAN_PATH)
    for name in list(sys.modules):
        if name.split(".")[0] in KIT_PACKAGES:
            del sys.modules[name]
    sys.argv = [spec["script"], *spec["argv"]]
    runpy.run_path(spec["script"], run_name="__main__")
    return 0


def _close_all_but(keep: set[int]) -> None:
    try:
        open_fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, 1024))
    for fd in open_fds:
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


class ForkLaunch:
    """Launches the engine's worker command in the pre-forked process instead of exec'ing a new Python."""

    def __init__(self, prefork: Prefork, limits, worker_script: Path):
        self._prefork = prefork
        self._limits = limits
        self._script = str(worker_script)
        self.launched = False

    def Popen(self, args, **kw):  # noqa: N802  (stands in for subprocess.Popen)
        known = {"pass_fds", "stdin", "stdout", "stderr", "cwd", "env", "preexec_fn", "close_fds"}
        if (set(kw) - known or len(args) < 4 or args[0] != sys.executable or args[1:3] != ["-I", "-B"]
                or args[3] != self._script or not kw.get("close_fds", True)
                or any(kw.get(s) not in (None, subprocess.DEVNULL) for s in ("stdin", "stdout", "stderr"))):
            return subprocess.Popen(args, **kw)
        lim = self._limits
        spec = {"script": self._script, "argv": [str(a) for a in args[4:]], "pass_fds": list(kw.get("pass_fds", ())),
                "cwd": kw.get("cwd") or os.getcwd(), "env": dict(kw.get("env") or {}),
                "limits": {"memory_bytes": lim.memory_bytes, "cpu_seconds": lim.cpu_seconds,
                           "file_bytes": lim.file_bytes}}
        self.launched = True
        return self._prefork.launch(spec, spec["pass_fds"])


def sandbox_class(prefork: Prefork | None):
    """The engine's ``Sandbox`` whose first worker is ``prefork`` (later ones start the ordinary way),
    through the engine's ``Sandbox._spawn`` hook."""
    from ..sandbox import supervisor

    class PrewarmedSandbox(supervisor.Sandbox):
        first_worker = "python -I worker.py"

        def _spawn(self, argv, **popen_kwargs):
            pre = prefork.take() if prefork is not None else None
            if pre is None:
                return super()._spawn(argv, **popen_kwargs)
            launch = ForkLaunch(pre, self.limits, supervisor.WORKER)
            proc = launch.Popen(argv, **popen_kwargs)
            if launch.launched:
                PrewarmedSandbox.first_worker = "forked from the pre-warmed grading process"
            return proc

        def isolation(self) -> dict:
            return super().isolation() | {"first_worker": PrewarmedSandbox.first_worker}

    return PrewarmedSandbox


def grade_prewarmed(notebook: str, slug: str, limits, device: str = "cpu") -> dict:
    """In a process forked from the fork server: grade one submission and return ``llmkit/result/v1`` JSON.

    The worker is forked first, before the engine reads anything of the assignment."""
    prefork = None if _NO_FORK else Prefork()
    try:
        from .. import grading, report

        result = grading.grade(notebook, slug, limits, device=device, sandbox_factory=sandbox_class(prefork))
        data = report.to_json(result)
        if _NO_FORK:
            data["isolation"]["first_worker"] = f"python -I worker.py ({_NO_FORK})"
        return data
    finally:
        if prefork is not None:
            prefork.discard()
