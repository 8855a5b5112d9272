"""What hidden tests hold instead of student code: remote callables backed by the sandbox.

``student.softmax(x)`` sends ``x`` to the worker, runs the student's ``softmax`` there and returns its
result as plain data. Failures become exceptions a test (and the student) can read:

* ``StudentError`` (an ``Exception``): the student's code raised. Hypothesis may shrink the input, so
  the report shows the smallest failing case.
* ``StudentAbort`` (a ``BaseException``): not implemented, not defined, timed out or crashed. These do not
  depend on the input, so they end the test at once instead of being shrunk call after call.
"""

from __future__ import annotations

import time

from .sandbox import codec
from .sandbox.supervisor import CallTimeout, Sandbox, WorkerDied


def lines(items: list) -> dict:
    """Mark a list argument to reach the student's code as a lazy iterator (``Remote.iterate``)."""
    return {"$lines": list(items)}


class StudentAbort(BaseException):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StudentError(Exception):
    def __init__(self, type_name: str, message: str, call: str, frames: list[str]):
        where = f" ({frames[-1]})" if frames else ""
        super().__init__(f"{call} raised {type_name}{': ' + message if message else ''}{where}")
        self.type_name = type_name
        self.student_message = message


class Student:
    """Attribute access gives a remote callable for a name defined in the submission."""

    def __init__(self, sandbox: Sandbox, extraction):
        self._sandbox = sandbox
        self._extraction = extraction
        self._struck: dict[str, str] = {}  # name -> why it is no longer called
        self._crashes: dict[str, int] = {}
        self.calls = 0  # calls into the worker, reported with the result (speed and coverage figures)
        self.last_call_seconds = 0.0  # wall time of the last call, measured here (the worker could lie)

    def __getattr__(self, name: str) -> "Remote":
        if name.startswith("_"):
            raise AttributeError(name)
        return Remote(self, name, None, name)

    def part(self, name: str, *args, **kwargs):
        """Build or call one of the kit's trusted stand-ins in the worker (``sandbox/parts/``): a model to
        decode from, a seeded generator, a helper that reads facts off a student's object. Failures
        here are the grader's, never the student's."""
        msg = {"op": "part", "name": name, "args": _handles(list(args)), "kwargs": _handles(kwargs)}
        reply = self._sandbox.request(msg, doing=f"building the kit's {name}")
        if "ok" not in reply:
            raise RuntimeError(f"could not build the kit's {name}: {reply.get('error')}")
        value = reply["ok"]  # an object stays in the worker (a handle); plain data comes back as it is
        return Remote(self, value, None, f"kit {name}", f"the kit's {name}") if isinstance(value, codec.Handle) else value

    # -- used by Remote -----------------------------------------------------------------------------
    def _request(self, root: str, label: str, msg: dict, timeout: float | None = None):
        if root in self._struck:
            raise StudentAbort(f"{label} was not called again: {self._struck[root]}")
        self.calls += 1
        started = time.perf_counter()
        try:
            reply = self._sandbox.request(msg, doing=f"running {label}", timeout=timeout)
        except CallTimeout as exc:
            self._struck[root] = f"it timed out earlier ({exc.reason})"
            raise StudentAbort(f"{label}: {exc.reason} (is there an infinite loop?)") from None
        except WorkerDied as exc:
            self._crashes[root] = self._crashes.get(root, 0) + 1
            if self._crashes[root] >= 2:
                self._struck[root] = "it crashed the worker twice"
            raise StudentAbort(f"{label}: {exc.reason}") from None
        self.last_call_seconds = time.perf_counter() - started
        if "missing" in reply:
            raise StudentAbort(self._missing_message(reply["missing"]))
        if "error" in reply:
            err = reply["error"]
            if err["type"] == "NotImplementedError":
                raise StudentAbort(f"{label} is not implemented yet (it raises NotImplementedError)")
            if err["type"] in ("SystemExit", "KeyboardInterrupt"):
                raise StudentAbort(f"{label} tried to stop the program ({err['type']}); graded code must return")
            raise StudentError(err["type"], err["message"], label, err.get("frames", []))
        return reply["ok"]

    def _missing_message(self, name: str) -> str:
        msg = f"`{name}` is not defined in your notebook"
        for err in self._sandbox.load_errors:
            if name in err["names"]:
                return (f"`{name}` could not be defined: cell {err['cell']}, line {err['line']} raised "
                        f"{err['type']}: {err['message']}")
        if self._extraction.syntax_errors:
            msg += "; these cells do not parse: " + "; ".join(self._extraction.syntax_errors)
        else:
            msg += " (check the spelling, and that it is defined at the top level of a code cell)"
        return msg


def _handles(value):
    """Remote objects passed as arguments travel as the handles the worker knows them by."""
    if isinstance(value, Remote):
        if not isinstance(value._target, codec.Handle) or value._attr:
            raise TypeError(f"{value._label} cannot be passed to student code (only objects can)")
        if value._generation != value._student._sandbox.restarts:
            raise StudentAbort(f"{value._label} was lost when an earlier call crashed or timed out the worker")
        return value._target
    if isinstance(value, list):
        return [_handles(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_handles(v) for v in value)
    if isinstance(value, dict):
        return {k: _handles(v) for k, v in value.items()}
    return value


class Remote:
    """A function, class or object living in the worker."""

    def __init__(self, student: Student, target, attr: str | None, root: str, label: str | None = None):
        self._student, self._target, self._attr, self._root = student, target, attr, root
        self._label = label or (f"{root}.{attr}" if attr else root)
        self._generation = student._sandbox.restarts  # objects die with the worker that holds them
        self._swap: tuple[str, ...] = ()

    def using(self, *parts: str) -> "Remote":
        """The same callable, with the submission's ``parts`` names swapped for the kit's trusted ones
        while each call runs: ``student.TransformerBlock.using("LayerNorm", "FeedForward")(cfg)``
        grades the block alone, whatever the student's LayerNorm does."""
        other = Remote(self._student, self._target, self._attr, self._root, self._label)
        other._generation, other._swap = self._generation, tuple(parts)
        return other

    def _msg(self, op: str, args, kwargs, **extra) -> dict:
        if isinstance(self._target, codec.Handle) and self._generation != self._student._sandbox.restarts:
            raise StudentAbort(f"{self._label} was lost when an earlier call crashed or timed out the worker")
        return {"op": op, "target": self._target, "attr": self._attr, "args": _handles(list(args)),
                "kwargs": _handles(kwargs), "swap": list(self._swap), **extra}

    def __call__(self, *args, **kwargs):
        return self._wrap(self._student._request(self._root, f"{self._label}(...)", self._msg("call", args, kwargs)))

    def method(self, name: str) -> "Remote":
        """A bound method of a remote object: ``mha.method("eval")()``."""
        if not isinstance(self._target, codec.Handle) or self._attr:
            raise TypeError("methods can only be taken from remote objects")
        bound = Remote(self._student, self._target, name, self._root, f"{self._label}.{name}")
        bound._generation = self._generation  # the object's worker, not today's
        return bound

    def vjp(self, *args, cotangent, **kwargs) -> dict:
        """Call, then back-propagate ``cotangent``: returns ``out``, ``arg_grads`` and ``param_grads``."""
        msg = self._msg("vjp", args, kwargs, cotangent=cotangent)
        return self._student._request(self._root, f"backward through {self._label}(...)", msg)

    def iterate(self, *args, mode: str = "list", limit: int = 10_000_000, timeout: float | None = None, **kwargs):
        """Call and iterate the result in the worker (see ``worker.op_iterate``); wrap an argument in
        ``lines(...)`` to pass it as a lazy iterator."""
        msg = self._msg("iterate", args, kwargs, mode=mode, limit=limit)
        return self._student._request(self._root, f"iterating {self._label}(...)", msg, timeout)

    def timed(self, *args, timeout: float | None = None, **kwargs):
        """Call with an explicit time limit; returns (result, wall seconds measured by the grader)."""
        value = self._student._request(self._root, f"{self._label}(...)", self._msg("call", args, kwargs), timeout)
        return self._wrap(value), self._student.last_call_seconds

    def load_parameters(self, state: dict) -> None:
        """Load weights by parameter name; raises ``AssertionError`` naming missing/extra parameters."""
        msg = self._msg("load_parameters", (), {}, state=state)
        out = self._student._request(self._root, f"loading weights into {self._label}", msg)
        if out.get("missing") or out.get("extra"):
            raise AssertionError(
                f"{self._label} has the wrong parameters: missing {out.get('missing') or 'none'}, "
                f"unexpected {out.get('extra') or 'none'} (compare with the attribute names the notebook asks for)"
            )
        if out.get("shape"):
            name, have, want = out["shape"]
            raise AssertionError(f"{self._label}: parameter {name} has shape {have}, expected {want}")

    def _wrap(self, value):
        if isinstance(value, codec.Handle):
            return Remote(self._student, value, None, self._root, f"{self._root} object")
        return value

    def __repr__(self):
        return f"<remote {self._label}>"
