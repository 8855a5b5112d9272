"""Pull the gradable definitions out of a student's notebook without running anything.

Grading runs the *definitions* a student wrote (imports, functions, classes, literal values, and any
value assigned to a CONSTANT_CASE name such as ``PAT = regex.compile(...)``), never
the notebook's top-level demo or training code: that code is slow, may need data or a GPU, and is not
what is graded. Parsing happens with ``ast`` only, so a hostile notebook cannot run code here.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path


class NotebookError(Exception):
    """The notebook cannot be read at all (corrupt JSON, not a notebook, missing file)."""


@dataclass
class Statement:
    """One top-level statement kept for grading, with where it came from (for error messages)."""

    source: str
    cell: int  # 1-based index among the notebook's cells
    line: int  # 1-based line inside that cell
    names: list[str]  # names it binds


@dataclass
class Extraction:
    statements: list[Statement] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # short descriptions of code left out
    syntax_errors: list[str] = field(default_factory=list)  # one per cell that does not parse

    @property
    def source(self) -> str:
        return "\n\n".join(s.source for s in self.statements) + "\n"

    def defined(self) -> set[str]:
        return {n for s in self.statements for n in s.names}

    def where(self, name: str) -> Statement | None:
        """The last statement binding ``name`` (later cells win, as when running top to bottom)."""
        found = None
        for s in self.statements:
            if name in s.names:
                found = s
        return found


_MAGIC = re.compile(r"^(\s*)(%|!|[\w.]+\s*=\s*[%!])")  # %time f(), !pip ..., files = !ls
_HELP = re.compile(r"^(\s*)[\w.]+\?{1,2}\s*$")  # obj?, obj??


def strip_magics(cell_source: str) -> str | None:
    """Blank out IPython-only lines (``%timeit``, ``!pip``, ``obj?``) so the cell parses as Python.

    Returns ``None`` for a cell magic (``%%time``...), whose whole body is not Python we can trust to
    parse. Magic lines are blanked, so line numbers in messages still match the cell; one that opens a
    block's body (``for ...:`` then ``    %time f()``) becomes ``pass`` so the block still parses.
    """
    lines = cell_source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        return None
    out: list[str] = []
    for line in lines:
        match = _MAGIC.match(line) or _HELP.match(line)
        if not match:
            out.append(line)
            continue
        previous = next((ln for ln in reversed(out) if ln.strip()), "")
        opens_block = previous.rstrip().endswith(":") and match.group(1)
        out.append(match.group(1) + "pass" if opens_block else "")
    return "\n".join(out)


def _is_simple_value(node: ast.AST) -> bool:
    """Literals and containers of literals (``CFG = {"emb_dim": 64}``, ``EPS = 1e-5``, ``-1``)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_simple_value(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_simple_value(k) for k in node.keys) and all(
            _is_simple_value(v) for v in node.values
        )
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_simple_value(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_simple_value(node.left) and _is_simple_value(node.right)
    return False


def _is_dotted_name(node: ast.AST) -> bool:
    """``torch.nn.functional`` or ``torch.softmax``: an alias of a library object, not a computation."""
    if not isinstance(node, ast.Attribute):
        return False
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


_CONSTANT = re.compile(r"^_*[A-Z][A-Z0-9_]+$")  # two characters or more: `Q = q @ W` is maths, not a constant


def _bound_names(node: ast.stmt) -> list[str] | None:
    """Names a kept statement binds, or ``None`` if the statement is not kept."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Import):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.module == "__future__":
            return None  # only valid at the top of a module; we assemble several cells
        return [a.asname or a.name for a in node.names]
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        names = [t.id for t in node.targets]  # type: ignore[attr-defined]
        # Literals and module aliases always; any value when the name is a CONSTANT (PAT = regex.compile(...)).
        if _is_simple_value(node.value) or _is_dotted_name(node.value) or all(_CONSTANT.match(n) for n in names):
            return names
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
        if _is_simple_value(node.value) or _CONSTANT.match(node.target.id):
            return [node.target.id]
    return None


def read_notebook(path: str | Path) -> dict:
    """The notebook as plain JSON data (``nbformat`` itself takes a second to import; grading is timed)."""
    path = Path(path)
    if not path.is_file():
        raise NotebookError(f"{path}: no such notebook")
    try:
        nb = json.loads(path.read_bytes().decode("utf-8", errors="replace"))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise NotebookError(
            f"{path.name} is not valid notebook JSON ({exc}). Open it in Jupyter; if it will not open, "
            "restore the last good version with `git checkout <commit> -- <notebook>`."
        ) from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list) or nb.get("nbformat") != 4:
        raise NotebookError(f"{path.name} is not a Jupyter notebook in format 4 (no list of cells found)")
    cells = [c for c in nb["cells"] if isinstance(c, dict)]
    for cell in cells:
        source = cell.get("source", "")
        cell["source"] = "".join(source) if isinstance(source, list) else str(source)
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = {}
    nb["cells"] = cells
    return nb


def extract(nb: dict) -> Extraction:
    """Keep each code cell's imports, definitions and simple constants, in notebook order."""
    out = Extraction()
    for index, cell in enumerate(nb["cells"], start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        python = strip_magics("".join(source) if isinstance(source, list) else source)
        if python is None:
            out.skipped.append(f"cell {index}: cell magic")
            continue
        try:
            tree = ast.parse(python)
        except SyntaxError as exc:
            out.syntax_errors.append(
                f"cell {index}, line {exc.lineno}: {exc.msg} (everything defined in this cell is missing)"
            )
            continue
        lines = python.splitlines()
        for node in tree.body:
            names = _bound_names(node)
            if names is None:
                out.skipped.append(f"cell {index}, line {node.lineno}: {type(node).__name__}")
                continue
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            text = "\n".join(lines[start - 1 : node.end_lineno])
            out.statements.append(Statement(text, index, start, names))
    return out


def extract_file(path: str | Path) -> Extraction:
    """Extract from a notebook, or from a plain ``.py`` file (kept whole after the same filtering)."""
    path = Path(path)
    if path.suffix == ".py":
        return extract({"cells": [{"cell_type": "code", "source": path.read_text(encoding="utf-8", errors="replace")}]})
    return extract(read_notebook(path))
