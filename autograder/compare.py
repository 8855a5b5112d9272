"""Comparisons for hidden tests: exact about what is wrong, silent about the expected answer.

Messages give shapes, dtypes, NaN counts and the size and place of the largest error; they never print
the expected tensor, so feedback cannot be mined for answers.

Tolerances: students compute in float32 while the reference runs in float64 on the same inputs, so a
correct implementation differs from the reference by float32 rounding, which grows with the magnitude of
the numbers involved. ``f32_tol(scale)`` is ``32 * eps32 * scale``: 32 units in the last place at that
magnitude, enough for any summation order (einsum, loops, logsumexp) and far below what any real bug
produces. Each test states the ``scale`` it uses.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, Phase, settings

EPS32 = torch.finfo(torch.float32).eps


def _bound_shrinking() -> None:
    """Hypothesis shrinks a failing input for up to 500 steps / 5 minutes; each step here is a call
    into the student's worker, so a wrong submission could take minutes to grade. A short budget keeps
    a useful small example while grading stays fast. The budget counts successful shrinks, not seconds,
    so the same submission always gets the same report; the time cap is only a backstop for pathological
    cases. The score never depends on it: a test has already failed when shrinking starts.
    (Internal constants; if a release renames them we keep hypothesis' defaults.)"""
    from hypothesis.internal.conjecture import engine

    if hasattr(engine, "MAX_SHRINKS") and hasattr(engine, "MAX_SHRINKING_SECONDS"):
        engine.MAX_SHRINKS = 50
        engine.MAX_SHRINKING_SECONDS = 120


_bound_shrinking()


def graded(max_examples: int):
    """Hypothesis settings for hidden tests: derandomized (same submission, same score), no deadline
    (a slow machine must not fail a correct submission), no example database written to disk."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        # No "explain" phase: it re-runs a failing test many times only to annotate which inputs could
        # vary, which costs a wrong submission many seconds of calls into the worker.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    )


def f32_tol(scale: float) -> float:
    return 32 * EPS32 * max(float(scale), 1.0)


def expect_tensor(value, what: str, shape=None, dtype=None, floating: bool = False) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise AssertionError(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}")
    if dtype is not None and value.dtype != dtype:
        raise AssertionError(f"{what} has dtype {value.dtype}, expected {dtype}")
    if floating and not value.is_floating_point():
        raise AssertionError(f"{what} has dtype {value.dtype}, expected a floating-point tensor")
    return value


def assert_close(actual, expected: torch.Tensor, atol: float, rtol: float = 0.0, what: str = "output") -> None:
    """``|actual - expected| <= atol + rtol * |expected|`` everywhere, compared in float64."""
    actual = expect_tensor(actual, what, shape=expected.shape)
    a, e = actual.detach().to(torch.float64), expected.detach().to(torch.float64)
    bad_nan = torch.isnan(a) & ~torch.isnan(e)
    if bad_nan.any():
        raise AssertionError(f"{what} contains NaN at {int(bad_nan.sum())} of {a.numel()} positions "
                             f"(first at index {_index(bad_nan)}); the expected values there are numbers")
    bad_inf = torch.isinf(a) & ~torch.isinf(e)
    if bad_inf.any():
        raise AssertionError(f"{what} contains inf at {int(bad_inf.sum())} positions (first at index {_index(bad_inf)})"
                             "; is something overflowing?")
    both = torch.isfinite(e)
    err = torch.where(both, (a - e).abs(), torch.zeros_like(a))
    allowed = atol + rtol * e.abs()
    wrong = (err > allowed) | (torch.isnan(e) != torch.isnan(a))
    if wrong.any():
        worst = torch.where(both, err, torch.zeros_like(err)).max()
        rel = (err / e.abs().clamp_min(1e-12)).max()
        raise AssertionError(f"{what} is wrong at {int(wrong.sum())} of {a.numel()} positions (first at index "
                             f"{_index(wrong)}): max abs error {float(worst):.3g}, max rel error {float(rel):.3g}, "
                             f"tolerance {atol:.2g}")


def _index(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0]) if mask.dim() else ()
