"""``llmkit check NOTEBOOK``: the public tests, run on the notebook's definitions in a child process.

The child gets a time limit so an infinite loop in a student's function ends with a message instead of
a hung terminal. This is a convenience for students, not the grader's sandbox.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from .notebook import NotebookError, extract_file

TIME_LIMIT_S = 120


def _child(notebook: str) -> None:
    """Runs in the child: define the notebook's functions, run the public tests, print JSON."""
    from .check import run_public_tests

    extraction = extract_file(notebook)
    names: dict = {"__name__": "submission"}
    load_errors = []
    for st in extraction.statements:
        try:
            exec(compile("\n" * (st.line - 1) + st.source, f"<cell {st.cell}>", "exec"), names)
        except BaseException as exc:  # noqa: BLE001  keep going: other exercises can still be checked
            load_errors.append(f"cell {st.cell}, line {st.line}: {type(exc).__name__}: {exc}")
    report = run_public_tests(names, Path(notebook).resolve().parent)
    outcomes = [o.__dict__ for o in report.outcomes]
    print("\n@@LLMKIT@@" + json.dumps({"outcomes": outcomes, "syntax_errors": extraction.syntax_errors,
                                       "load_errors": load_errors}))


def run_check(notebook: str) -> int:
    try:
        extract_file(notebook)  # fail fast, in this process, on an unreadable notebook
    except NotebookError as exc:
        print(f"llmkit check: {exc}", file=sys.stderr)
        return 2
    try:
        proc = subprocess.run([sys.executable, "-m", "autograder.student.cli", "--child", notebook],
                              capture_output=True, text=True, timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        print(f"the checks did not finish in {TIME_LIMIT_S} s: is there an infinite loop in one of your functions?")
        return 1
    marker = proc.stdout.rfind("@@LLMKIT@@")
    if marker < 0:
        print("the checks stopped before finishing (did your code exit the process?)\n" + proc.stderr[-2000:])
        return 1
    data = json.loads(proc.stdout[marker + len("@@LLMKIT@@"):])
    for err in data["syntax_errors"]:
        print(f"syntax error: {err}")
    for err in data["load_errors"]:
        print(f"could not run a definition: {err}")
    passed = 0
    for o in data["outcomes"]:
        passed += o["passed"]
        print(f"{'PASS' if o['passed'] else 'FAIL'}  {o['exercise']}: {o['name']}")
        if not o["passed"]:
            print(f"      {o['message']}")
    print(f"{passed}/{len(data['outcomes'])} public checks passed")
    return 0 if data["outcomes"] and passed == len(data["outcomes"]) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmkit", description="Run the public checks on your notebook.")
    sub = parser.add_subparsers(dest="command")
    c = sub.add_parser("check", help="run the public tests on a notebook")
    c.add_argument("notebook")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    if args.command != "check":
        parser.print_help()
        return 2
    return run_check(args.notebook)


if __name__ == "__main__":
    sys.exit(main())
