"""The worker: the only process that runs student code.

Started by ``supervisor.py`` as ``python -I worker.py REQ_FD RESP_FD DROP_UID``. It imports torch and
warms it up while it still may, then (when started as root) drops to an unprivileged user, blocks
imports of the kit's own packages, silences stdout/stderr, and serves requests on a pipe. It never
sends anything but data (see ``codec.py``), and it trusts nothing it is sent except by its parent.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.abc
import math  # noqa: F401  (pre-imported for students before privileges drop)
import os
import resource
import signal
import struct
import sys
import traceback

import numpy as np  # noqa: F401
import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: F401

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `python -I` leaves the script's folder out
import codec  # noqa: E402  (the sibling wire-format module)

def _load_parts(topics: list[str]) -> dict:
    """The kit's trusted stand-ins (parts/) for weeks that use them. Held by the Worker object only, not
    as a module global, so ``import __main__`` does not hand them to a submission."""
    parts = {}
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        for topic in topics:
            parts.update(importlib.import_module(f"parts.{topic}").PARTS)
        return parts
    finally:
        del sys.path[0]
        for name in [m for m in sys.modules if m == "parts" or m.startswith("parts.")]:
            del sys.modules[name]  # not importable by name from student code


del sys.path[0]  # and nothing else in this folder is for student code

BLOCKED_PACKAGES = ("reference", "autograder", "tests")


class _Missing(Exception):
    """The requested name is not defined by the submission."""


class _BlockKit(importlib.abc.MetaPathFinder):
    """Refuse imports of the kit's trusted packages, whatever sys.path says."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED_PACKAGES:
            raise ImportError(f"'{name}' is not available to submissions")
        return None


# Imported before privileges drop, because afterwards the interpreter's own files may be unreadable
# (a Python installed under /root, say). Standard modules always; the listed libraries only when the
# grader asks (the submission imports them), since each costs start-up time.
STDLIB = ("array", "base64", "bisect", "collections", "copy", "dataclasses", "enum", "functools", "gzip", "heapq",
          "io", "itertools", "json", "operator", "pathlib", "random", "re", "statistics", "string", "struct",
          "textwrap", "time", "typing", "unicodedata", "warnings", "abc", "shlex", "contextlib", "numbers",
          "pickle", "zipfile", "tempfile", "shutil", "glob", "csv", "string", "os.path")
LIBRARIES = ("regex", "tiktoken", "numpy", "tqdm", "tqdm.auto")  # plotting is never graded: not worth the start-up


def _preload(extra: list[str]) -> None:
    for name in STDLIB + tuple(n for n in extra if n in LIBRARIES):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  (a library that is not installed is the submission's problem)
            pass


def _warm_up():
    """Run the ops students use once, so torch's lazy imports happen before privileges drop."""
    torch.set_num_threads(1)
    x = torch.randn(2, 3, 4, requires_grad=True)
    lin = nn.Linear(4, 4)
    y = torch.einsum("bij,bkj->bik", lin(x), x).masked_fill(torch.ones(3, 3, dtype=torch.bool).tril() == 0, -math.inf)
    y = torch.softmax(y, -1) @ x
    nn.Dropout(0.1)(y).sum().backward()
    torch.tril(torch.ones(2, 2)).triu().bool().any()
    torch.nan_to_num(torch.where(x > 0, x, 0.0)).logsumexp(-1).exp().sqrt().var()


def _drop_privileges(uid: int) -> str:
    if os.getuid() != 0 or uid < 0:
        return "same-user"
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    try:  # must be irreversible
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise SystemExit("could not drop privileges")
    resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))  # counted per user: caps fork bombs
    return "unprivileged-user"


class Worker:
    def __init__(self, req_fd: int, resp_fd: int, parts: dict | None = None):
        self.parts = parts
        self.req = os.fdopen(req_fd, "rb", buffering=0)
        self.resp = os.fdopen(resp_fd, "wb", buffering=0)
        self.ns: dict = {"__name__": "submission"}
        self.handles: dict[int, object] = {}
        self._handle_of: dict[int, int] = {}  # id(obj) -> handle, so one object keeps one handle

    # -- framing -----------------------------------------------------------------------------
    def _read_exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            b = self.req.read(n - got)
            if not b:
                raise EOFError
            chunks.append(b)
            got += len(b)
        return b"".join(chunks)

    def receive(self):
        (n,) = struct.unpack("<Q", self._read_exact(8))
        return codec.decode(self._read_exact(n))

    def send(self, msg) -> None:
        try:
            data = codec.encode(msg, on_unknown=self._to_handle)
        except Exception as exc:  # e.g. a tensor subclass that misbehaves when serialised
            data = codec.encode({"error": self._describe(exc)})
        self.resp.write(struct.pack("<Q", len(data)) + data)

    def _to_handle(self, obj):
        hid = self._handle_of.get(id(obj))
        if hid is None:
            hid = self._handle_of[id(obj)] = len(self.handles) + 1
            self.handles[hid] = obj  # kept alive for the worker's lifetime, so id(obj) stays unique
        return codec.Handle(hid, type(obj).__name__)

    def _resolve(self, value):
        """Replace Handles in request arguments with the objects they stand for."""
        if isinstance(value, codec.Handle):
            return self.handles[value.id]
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self._resolve(v) for v in value)
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        return value

    @staticmethod
    def _describe(exc: BaseException) -> dict:
        """Exception type, message and the student's own frames (cells), nothing of the grader."""
        frames = [
            f"{f.filename[1:-1]}, line {f.lineno}, in {f.name}"
            for f in traceback.extract_tb(exc.__traceback__)
            if f.filename.startswith("<cell ")
        ]
        try:
            message = str(exc)
        except BaseException:  # noqa: BLE001  (a student exception whose __str__ raises)
            message = "<unprintable message>"
        return {"type": type(exc).__name__, "message": message[:2000], "frames": frames[-3:]}

    # -- operations ----------------------------------------------------------------------------
    def op_load(self, statements, seconds_each=5.0):
        """Run each kept statement; one that fails or takes over ``seconds_each`` costs only itself."""

        def too_slow(signum, frame):
            raise TimeoutError(f"took longer than {seconds_each:g} s at definition time")

        previous = signal.signal(signal.SIGALRM, too_slow)
        errors = []
        try:
            for st in statements:
                code = "\n" * (st["line"] - 1) + st["source"]
                signal.setitimer(signal.ITIMER_REAL, seconds_each)
                try:
                    exec(compile(code, f"<cell {st['cell']}>", "exec"), self.ns)
                except BaseException as exc:  # noqa: BLE001  (SystemExit included: keep loading)
                    errors.append({"cell": st["cell"], "line": st["line"], "names": st["names"], **self._describe(exc)})
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)
        return {"errors": errors}

    def _target(self, target, attr):
        if isinstance(target, codec.Handle):
            obj = self.handles[target.id]
        elif target not in self.ns:
            raise _Missing(target)
        else:
            obj = self.ns[target]
        return getattr(obj, attr) if attr else obj

    def op_call(self, target, attr, args, kwargs, call=True):
        fn = self._target(target, attr)
        return fn(*self._resolve(args), **self._resolve(kwargs)) if call else fn

    def op_part(self, name, args, kwargs):
        """Build one of the kit's trusted stand-ins (``parts/``), e.g. a GPT model to decode from."""
        if self.parts is None:
            raise RuntimeError("this week's grader has no parts")
        return self.parts[name](*self._resolve(args), **self._resolve(kwargs))

    @contextlib.contextmanager
    def _swapped(self, names):
        """While one request runs, the submission's ``names`` refer to the kit's parts instead."""
        saved = {n: self.ns[n] for n in names if n in self.ns}
        try:
            for n in names:
                self.ns[n] = self.parts[n]
            yield
        finally:
            for n in names:
                if n in saved:
                    self.ns[n] = saved[n]
                else:
                    self.ns.pop(n, None)

    def op_vjp(self, target, attr, args, kwargs, cotangent):
        """Call with gradients on every floating tensor argument; return output and gradients."""
        args = [a.detach().clone().requires_grad_(True) if _is_float(a) else a for a in self._resolve(args)]
        module = self.handles[target.id] if isinstance(target, codec.Handle) else None
        if isinstance(module, nn.Module):
            module.zero_grad(set_to_none=True)
        out = self._target(target, attr)(*args, **self._resolve(kwargs))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"expected a tensor output, got {type(out).__name__}")
        (out * cotangent.to(out.dtype)).sum().backward()
        arg_grads = [a.grad if _is_float(a) else None for a in args]
        param_grads = {}
        if isinstance(module, nn.Module):
            param_grads = {n: p.grad for n, p in module.named_parameters()}
        return {"out": out.detach(), "arg_grads": arg_grads, "param_grads": param_grads}

    def op_load_parameters(self, target, state):
        """Copy the grader's weights into a student's module by parameter name (buffers ignored)."""
        module = self.handles[target.id]
        if not isinstance(module, nn.Module):
            raise TypeError(f"expected an nn.Module, got {type(module).__name__}")
        params = dict(module.named_parameters())
        missing = sorted(set(state) - set(params))
        extra = sorted(set(params) - set(state))
        if missing or extra:
            return {"missing": missing, "extra": extra}
        with torch.no_grad():
            for name, value in state.items():
                if params[name].shape != value.shape:
                    return {"shape": [name, list(params[name].shape), list(value.shape)]}
                params[name].copy_(value)
        return {}

    def op_iterate(self, target, attr, args, kwargs, mode, limit):
        """Call, then iterate what it returns (a generator, say) inside the worker.

        ``args`` items tagged ``{"$lines": [...]}`` become lazy iterators that count what was pulled,
        so laziness is observable. ``mode``: "list" returns up to ``limit`` items; "digest" returns
        the count and a SHA-256 of the items (for outputs too big to send) plus the growth of peak
        memory during the iteration; "first" returns the first item and how many input items had
        been pulled when it appeared.
        """
        pulled = [0]

        def lazy(items):
            for item in items:
                pulled[0] += 1
                yield item

        args = [lazy(a["$lines"]) if isinstance(a, dict) and "$lines" in a else a for a in self._resolve(args)]
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        iterator = iter(self._target(target, attr)(*args, **self._resolve(kwargs)))
        if mode == "first":
            first = next(iterator, None)
            return {"first": first, "pulled": pulled[0]}
        if mode == "list":
            out = []
            for item in iterator:
                out.append(item)
                if len(out) > limit:
                    raise ValueError(f"produced more than {limit} items")
            return {"items": out, "pulled": pulled[0]}
        digest, count = hashlib.sha256(), 0
        for item in iterator:
            digest.update(repr(item).encode())
            digest.update(b",")
            count += 1
        grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
        return {"count": count, "sha256": digest.hexdigest(), "peak_growth_bytes": grown_kb * 1024, "pulled": pulled[0]}

    def serve(self) -> None:
        while True:
            try:
                req = self.receive()
            except EOFError:
                return
            try:
                op = req["op"]
                swap = req.get("swap") or ()
                if swap and (self.parts is None or any(n not in self.parts for n in swap)):
                    raise RuntimeError(f"cannot swap {swap}: not among this week's parts")
                with self._swapped(swap):
                    result = self._dispatch(op, req)
                reply = {"id": req["id"], "ok": result}
            except _Missing as exc:
                reply = {"id": req.get("id"), "missing": str(exc.args[0])}
            except BaseException as exc:  # noqa: BLE001  (sys.exit in student code is just an error)
                reply = {"id": req.get("id"), "error": self._describe(exc)}
            self.send(reply)

    def _dispatch(self, op, req):
        if op == "load":
            return self.op_load(req["statements"])
        if op == "call":
            return self.op_call(req["target"], req.get("attr"), req["args"], req["kwargs"], req.get("call", True))
        if op == "vjp":
            return self.op_vjp(req["target"], req.get("attr"), req["args"], req["kwargs"], req["cotangent"])
        if op == "iterate":
            return self.op_iterate(req["target"], req.get("attr"), req["args"], req["kwargs"], req["mode"],
                                   req.get("limit", 10_000_000))
        if op == "load_parameters":
            return self.op_load_parameters(req["target"], req["state"])
        if op == "part":
            return self.op_part(req["name"], req["args"], req["kwargs"])
        raise ValueError(f"unknown op {op!r}")


def _is_float(x) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point()


def main() -> None:
    req_fd, resp_fd, drop_uid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    _warm_up()
    _preload(sys.argv[4].split(",") if len(sys.argv) > 4 else [])
    parts = _load_parts(sys.argv[5].split(",")) if len(sys.argv) > 5 and sys.argv[5] != "-" else None
    isolation = _drop_privileges(drop_uid)
    sys.meta_path.insert(0, _BlockKit())
    torch.manual_seed(0)
    # Student output must never reach the grader's log (fake CI annotations, fake scores).
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    worker = Worker(req_fd, resp_fd, parts)
    worker.send({"ready": {"isolation": isolation, "uid": os.getuid(), "pid": os.getpid()}})
    worker.serve()


if __name__ == "__main__":
    main()
