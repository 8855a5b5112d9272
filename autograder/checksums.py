"""Detect edits to cells the instructor locked, using the checksums nbgrader's release step stores.

The hash is nbgrader's: MD5 over the cell's source, type, grade/solution/locked flags, grade_id and (for
grade cells) points, so notebooks released with nbgrader directly are checked the same way. The grader
only extracts definitions, so an edited locked cell changes nothing by itself; it is reported as a
warning for the course staff.
"""

from __future__ import annotations

import hashlib


def _flags(cell) -> tuple[bool, bool, bool]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    grade, solution = bool(meta.get("grade")), bool(meta.get("solution"))
    locked = False if solution else (True if grade else bool(meta.get("locked")))
    return grade, solution, locked


def cell_checksum(cell) -> str:
    meta = cell["metadata"]["nbgrader"]
    grade, solution, locked = _flags(cell)
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    h = hashlib.md5()
    for part in (source, cell["cell_type"], str(grade), str(solution), str(locked), meta["grade_id"]):
        h.update(part.encode("utf-8"))
    if grade:
        h.update(str(float(meta["points"])).encode("utf-8"))
    return h.hexdigest()


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def modified_locked_cells(nb, original=None) -> list[str]:
    """One warning per locked cell that was edited or deleted.

    With the instructor's ``original`` notebook, locked cells are compared by grade_id with it, so editing
    a cell's metadata (unlocking it, deleting its checksum) hides nothing. Without it, the checksums
    stored at release time are the reference.
    """
    if original is not None:
        submitted = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id"): c for c in nb["cells"]}
        warnings = []
        for cell in original["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if not _flags(cell)[2] or not meta.get("grade_id"):
                continue
            mine = submitted.get(meta["grade_id"])
            if mine is None:
                warnings.append(f"locked cell {meta['grade_id']} was deleted")
            elif _source(mine) != _source(cell) or mine.get("cell_type") != cell.get("cell_type"):
                warnings.append(f"locked cell {meta['grade_id']} was modified")
        return warnings
    warnings = []
    for index, cell in enumerate(nb["cells"], start=1):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("checksum") or not _flags(cell)[2] or "grade_id" not in meta:
            continue
        try:
            same = cell_checksum(cell) == meta["checksum"]
        except (KeyError, TypeError, ValueError):
            same = False
        if not same:
            warnings.append(f"locked cell {index} ({meta['grade_id']}) was modified")
    return warnings
