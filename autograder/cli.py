"""``llmkit``: release a course, grade submissions, run public checks, and a demo of all three."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .student.notebook import NotebookError


def _grade(args) -> int:
    from . import report
    from .grading import grade
    from .sandbox.supervisor import Limits

    from .assignments import get_assignment

    get_assignment(args.assignment)  # an unknown slug is a usage error (exit 2) before anything is written
    limits = Limits(call_timeout_s=args.call_timeout, memory_bytes=args.memory_mb << 20)
    out = Path(args.out)
    problem = _unsafe_output_dir(out)  # checked before student code runs, and created now: nothing to plant
    if problem:
        print(f"llmkit grade: {problem}", file=sys.stderr)
        return 1
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("llmkit grade: --device cuda needs a GPU that PyTorch can use (torch.cuda.is_available() is False)",
                  file=sys.stderr)
            return 2
    try:
        result = grade(args.submission, args.assignment, limits, device=args.device)
    except RuntimeError as exc:  # the grader itself could not run: no score, non-zero exit
        print(f"llmkit grade: grading could not run: {exc}", file=sys.stderr)
        return 1
    data = report.to_json(result)
    _write_safely(out / "result.json", json.dumps(data, indent=2) + "\n")
    _write_safely(out / "summary.md", report.to_markdown(result))
    _write_safely(out / "classroom.b64", report.classroom_b64(result) + "\n")
    if args.github:  # inside a GitHub Actions step: job summary and the step output `result`
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as fh:
                fh.write(report.to_markdown(result) + "\n")
        if os.environ.get("GITHUB_OUTPUT"):
            with open(os.environ["GITHUB_OUTPUT"], "a") as fh:
                fh.write(f"result={report.classroom_b64(result)}\n")
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(report.to_markdown(result))
    return 0  # grading completed, whatever the score


def _unsafe_output_dir(out: Path) -> str | None:
    """Create the output folder, or refuse one that student code (another user) could have prepared."""
    out.mkdir(parents=True, exist_ok=True)
    st = out.lstat()
    if out.is_symlink() or not out.is_dir():
        return f"--out {out} must be a real folder, not a link"
    if st.st_uid != os.getuid() or st.st_mode & 0o002:
        return f"--out {out} must belong to the grading user and not be writable by other users"
    return None


def _write_safely(path: Path, text: str) -> None:
    """Write via a new temporary file renamed into place: never follows a link someone planted."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _release(args) -> int:
    from .release import ReleaseError, build_release

    try:
        written = build_release(Path(args.source), Path(args.out))
    except ReleaseError as exc:
        print(f"release failed: {exc}", file=sys.stderr)
        return 1
    print(f"released {len(written)} assignment(s) into {args.out}: {', '.join(written)}")
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("grade", help="grade a notebook or repository with the hidden suite")
    g.add_argument("submission", help="a notebook, or a student repository / folder holding it")
    g.add_argument("--assignment", "-a", required=True, help="assignment slug, e.g. w02_attention")
    g.add_argument("--out", default="grading-output", help="folder for result.json, summary.md, classroom.b64")
    g.add_argument("--format", choices=["markdown", "json"], default="markdown", help="what to print")
    g.add_argument("--github", action="store_true", help="also write the GitHub job summary and step output")
    g.add_argument("--call-timeout", type=float, default=10.0, help="seconds allowed per call of student code")
    g.add_argument("--memory-mb", type=int, default=4096, help="address-space limit of the student worker")
    g.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where the hidden tests run student code (cuda: on a GPU runner)")
    g.set_defaults(func=_grade)

    r = sub.add_parser("release", help="build the student template from the instructor notebooks")
    r.add_argument("--source", default="assignments", help="folder of instructor assignments")
    r.add_argument("--out", default="release", help="where to write the student repository")
    r.set_defaults(func=_release)

    c = sub.add_parser("check", help="run the public tests on a notebook (what students run)")
    c.add_argument("notebook")
    c.set_defaults(func=lambda a: __import__("autograder.student.cli", fromlist=["run_check"]).run_check(a.notebook))

    d = sub.add_parser("demo", help="release the course, then grade the bundled example submissions")
    d.add_argument("--out", default="build/demo")
    d.set_defaults(func=_demo)

    # Class grading (llmkit grade-all, llmkit gradebook ...) and platform exports (llmkit export ...) live in
    # their own packages; their heavy imports happen only when one of their commands runs.
    from .export.cli import add_parsers as add_export_parsers
    from .gradebook.cli_commands import add_parsers as add_gradebook_parsers

    add_gradebook_parsers(sub)
    add_export_parsers(sub)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (NotebookError, LookupError) as exc:
        print(f"llmkit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
