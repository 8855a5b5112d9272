"""``llmkit release``: turn the instructor's notebooks into the student repository.

nbgrader's own preprocessors do the notebook work (used as a library: no course directory, gradebook or
exchange): solution regions become stubs, outputs are cleared, locked cells are marked read-only and
checksummed. Around them this module checks the authoring (every solution region well-formed and in a
solution cell, every exercise present), copies the public tests and the student half of the engine,
writes the repository files, and finally proves that no solution line, hidden test or reference code
ended up in the release.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import nbformat

from .assignments import Assignment, all_assignments

BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
STUDENT_PACKAGE = Path(__file__).parent / "student"
TEMPLATES = Path(__file__).parent / "templates"
KIT_ROOT = Path(__file__).resolve().parent.parent


class ReleaseError(Exception):
    pass


def _cell_name(nb_path: Path, index: int, cell) -> str:
    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    label = f"cell {index}" + (f" ({gid})" if gid else (f" (id {cell.get('id')})" if cell.get("id") else ""))
    return f"{nb_path.name}, {label}"


def check_authoring(nb, nb_path: Path, assignment: Assignment) -> None:
    """Reject malformed or unmarked solution regions, and missing exercises, naming notebook and cell."""
    seen_ids = set()
    for index, cell in enumerate(nb.cells, start=1):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        where = _cell_name(nb_path, index, cell)
        depth, regions = 0, 0
        for lineno, line in enumerate(cell.source.splitlines(), start=1):
            if BEGIN in line:
                if depth:
                    raise ReleaseError(f"{where}, line {lineno}: nested '### {BEGIN}' (close the first region first)")
                depth, regions = 1, regions + 1
            elif END in line:
                if not depth:
                    raise ReleaseError(f"{where}, line {lineno}: '### {END}' without a matching '### {BEGIN}'")
                depth = 0
        if depth:
            raise ReleaseError(f"{where}: '### {BEGIN}' is never closed with '### {END}'")
        if regions and not meta.get("solution"):
            raise ReleaseError(f"{where}: has a solution region but is not marked as a solution cell "
                               "(set nbgrader metadata solution: true, or use the 'Autograded answer' cell type)")
        if meta.get("solution") and cell.cell_type == "code" and not regions:
            raise ReleaseError(f"{where}: is a code solution cell without a '### {BEGIN}' / '### {END}' region; "
                               "mark the part students must write, so the stub keeps the signature")
        gid = meta.get("grade_id")
        if meta and gid:
            if gid in seen_ids:
                raise ReleaseError(f"{where}: grade_id {gid!r} is used twice")
            seen_ids.add(gid)
    for ex in assignment.exercises:
        if ex.name not in seen_ids:
            raise ReleaseError(f"{nb_path.name}: no solution cell with grade_id {ex.name!r} for exercise {ex.name}")
    for q in assignment.written:
        if q.grade_id not in seen_ids:
            raise ReleaseError(f"{nb_path.name}: no answer cell with grade_id {q.grade_id!r} for the written question")


def student_version(nb, nb_path: Path):
    """nbgrader's release pipeline, minus everything that needs a course database."""
    from nbgrader.preprocessors import (
        CheckCellMetadata, ClearHiddenTests, ClearMarkScheme, ClearOutput, ClearSolutions, ComputeChecksums, LockCells,
    )

    nb = copy.deepcopy(nb)
    resources: dict = {}
    steps = [CheckCellMetadata(), LockCells(), ClearSolutions(), ClearOutput(), ClearHiddenTests(), ClearMarkScheme(),
             ComputeChecksums()]
    for step in steps:
        try:
            nb, resources = step.preprocess(nb, resources)
        except Exception as exc:  # nbgrader reports authoring mistakes as bare RuntimeError/ValueError
            raise ReleaseError(f"{nb_path.name}: nbgrader's {type(step).__name__} rejected the notebook: {exc}") from None
    for cell in nb.cells:  # execution counts are outputs too; keep the file byte-stable
        if cell.cell_type == "code":
            cell.execution_count = None
    return nb


def _split_lines(nb) -> tuple[set[str], set[str]]:
    """(lines inside solution regions or whole-cell answers, lines everywhere else), stripped."""
    inside, outside = set(), set()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        lines = cell.source.splitlines()
        if meta.get("solution") and BEGIN not in cell.source:
            inside.update(ln.strip() for ln in lines)
            continue
        in_region = False
        for line in lines:
            if BEGIN in line:
                in_region = True
            elif END in line:
                in_region = False
            else:
                (inside if in_region else outside).add(line.strip())
    return inside, outside


def solution_lines(nb) -> set[str]:
    """Lines that exist only inside solution regions: what must never leak."""
    inside, outside = _split_lines(nb)
    return {ln for ln in inside - outside if len(ln) >= 12 and not ln.startswith("#")}


def _code_lines(path: Path) -> set[str]:
    """Distinctive lines of a trusted source file (long, not imports or comments)."""
    out = set()
    for line in path.read_text().splitlines():
        s = line.strip()
        if len(s) >= 30 and not s.startswith(("#", "import ", "from ", '"""')):
            out.add(s)
    return out


def find_leaks(release: Path, secrets: dict[str, set[str]]) -> list[str]:
    """Every (file, kind) in ``release`` containing a secret line. ``secrets``: kind -> lines."""
    leaks = []
    for path in sorted(release.rglob("*")):
        if not path.is_file() or ".git" in path.parts:
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".ipynb":  # compare against the decoded cell sources, not JSON-escaped text
            text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
        lines = {ln.strip() for ln in text.splitlines()}
        for kind, secret in secrets.items():
            hit = lines & secret
            if hit:
                leaks.append(f"{path.relative_to(release)}: {kind} line {sorted(hit)[0]!r}")
    return leaks


def trusted_secrets(source_notebooks: list) -> dict[str, set[str]]:
    """Lines that must not appear in a release. Lines that the notebooks show students on purpose
    (the contract: ``class MultiHeadAttention(nn.Module):``) are allowed, whichever file they are in."""
    public = set().union(set(), *[_split_lines(nb)[1] for nb in source_notebooks])
    public |= set().union(*[_code_lines(p) for p in STUDENT_PACKAGE.glob("*.py")])
    return {
        # A line one notebook publishes (``class FeedForward(nn.Module):`` in week 3's stub) is public in
        # all of them, even where a later week keeps it inside a solution region (its pasted week-3 model).
        "solution": set().union(set(), *[solution_lines(nb) for nb in source_notebooks]) - public,
        "reference": set().union(set(), *[_code_lines(p) for p in (KIT_ROOT / "reference").rglob("*.py")]) - public,
        "hidden test": set().union(set(), *[_code_lines(p) for p in (Path(__file__).parent / "suites").rglob("*.py")])
        - public,
    }


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_release(source: Path, out: Path) -> list[str]:
    """Build the student repository in ``out`` from ``source`` (the assignments folder).

    Everything is built in a temporary sibling folder and swapped in only when every check passed, so
    a failed release leaves the previous one untouched.
    """
    known = all_assignments()
    slugs = sorted(d.name for d in source.iterdir() if d.is_dir() and d.name in known) if source.is_dir() else []
    if not slugs:
        raise ReleaseError(f"no assignment folders in {source} (known assignments: {', '.join(sorted(known))})")
    out_abs, source_abs = out.resolve(), source.resolve()
    for protected in (source_abs, KIT_ROOT):
        if out_abs == protected or out_abs in protected.parents or out_abs in source_abs.parents:
            raise ReleaseError(f"refusing to write the release to {out}: it would replace {protected}")
    out_abs.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_abs.name}-staging-", dir=out_abs.parent))
    try:
        _build_into(source, staging, [known[s] for s in slugs])
        if out_abs.exists():
            shutil.rmtree(out_abs)
        staging.rename(out_abs)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return slugs


def _build_into(source: Path, out: Path, assignments: list[Assignment]) -> None:
    sources = []
    for assignment in assignments:
        slug = assignment.slug
        nb_path = source / slug / assignment.notebook
        if not nb_path.is_file():
            raise ReleaseError(f"{source / slug}: missing {assignment.notebook}")
        try:
            nb = nbformat.read(nb_path, as_version=4)
        except Exception as exc:
            raise ReleaseError(f"{nb_path}: not a readable notebook ({exc})") from None
        check_authoring(nb, nb_path, assignment)
        sources.append(nb)
        (out / slug).mkdir(parents=True)
        nbformat.write(student_version(nb, nb_path), out / slug / assignment.notebook)
        shutil.copy(source / slug / "public_tests.py", out / slug / "public_tests.py")
        if (source / slug / "data").is_dir():
            shutil.copytree(source / slug / "data", out / slug / "data")
    _copy_student_package(out)
    _write_repository_files(out, assignments)
    leaks = find_leaks(out, trusted_secrets(sources))
    if leaks:
        raise ReleaseError("the release would leak trusted content; nothing was written:\n  " + "\n  ".join(leaks))


def _copy_student_package(out: Path) -> None:
    target = out / "autograder" / "student"
    target.mkdir(parents=True)
    for py in sorted(STUDENT_PACKAGE.glob("*.py")):
        shutil.copy(py, target / py.name)
    _write(out / "autograder" / "__init__.py", '"""The student half of the llmkit engine: `llmkit check` and `check(...)`."""\n')


def _write_repository_files(out: Path, assignments: list[Assignment]) -> None:
    weeks = "\n".join(f"| `{a.slug}/{a.notebook}` | {a.title} |" for a in assignments)
    checks = "\n".join(f"          llmkit check {a.slug}/{a.notebook} || true" for a in assignments)
    for template in sorted(TEMPLATES.rglob("*")):
        if template.is_file():
            text = template.read_text().replace("{{WEEKS}}", weeks).replace("{{CHECKS}}", checks)
            _write(out / template.relative_to(TEMPLATES).as_posix().replace("dot-", ".", 1), text)
