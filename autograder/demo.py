"""``llmkit demo``: the main job on a built-in default.

Releases the bundled course, then grades the instructor's solution, the untouched student stub and the
example submissions under ``tests/submissions/`` (typical bugs), and prints the score table.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

from .release import KIT_ROOT, build_release


def _submission_notebook(stub_path: Path, code: str | list[str], target: Path) -> Path:
    """The released stub with the submission's code appended as last cells (as a student would fill it)."""
    import nbformat

    nb = nbformat.read(stub_path, as_version=4)
    nb = copy.deepcopy(nb)
    for cell in [code] if isinstance(code, str) else code:
        nb.cells.append(nbformat.v4.new_code_cell(cell))
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target


def example_cells(path: Path) -> list[str]:
    """The code cells of an example submission. A file whose first line is ``# builds on: <name>`` holds
    only what it changes: it is graded after the cells of ``<name>.py`` in the same folder (later cells
    win, as when a notebook runs top to bottom), so each bug file shows just its bug."""
    code = path.read_text()
    first = code.split("\n", 1)[0]
    if first.startswith("# builds on:"):
        base = path.with_name(first.split(":", 1)[1].strip() + ".py")
        return example_cells(base) + [code]
    return [code]


def example_notebook(stub_path: Path, example: Path, target: Path) -> Path:
    return _submission_notebook(stub_path, example_cells(example), target)


def run_demo(out: Path) -> int:
    from . import report
    from .assignments import all_assignments
    from .grading import grade

    release = out / "release"
    slugs = build_release(KIT_ROOT / "assignments", release)
    print(f"released {', '.join(slugs)} into {release}\n")
    rows = []
    for slug in slugs:
        assignment = all_assignments()[slug]
        cases = {"solution (instructor notebook)": KIT_ROOT / "assignments" / slug / assignment.notebook,
                 "untouched stub": release / slug / assignment.notebook}
        for example in sorted((KIT_ROOT / "tests" / "submissions" / slug).glob("*.py")):
            if example.stem.startswith(("correct", "bug_")):
                cases[example.stem] = example_notebook(release / slug / assignment.notebook, example,
                                                       out / "submissions" / slug / f"{example.stem}.ipynb")
        for name, notebook in cases.items():
            started = time.monotonic()
            result = grade(notebook, slug)
            seconds = time.monotonic() - started
            (out / "results").mkdir(parents=True, exist_ok=True)
            (out / "results" / f"{slug}--{name.split(' ')[0]}.json").write_text(json.dumps(report.to_json(result), indent=2))
            per = "  ".join(f"{ex}={got}/{top}" for ex, (got, top) in result.exercise_scores().items())
            rows.append((slug, name, f"{result.score}/{result.max_score}", f"{seconds:.1f}s", per))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    print(f"\nfull results: {out / 'results'}")
    return 0
