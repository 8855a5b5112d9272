"""Static detection of banned APIs inside graded definitions.

An exercise that asks students to write softmax is not passed by calling ``torch.softmax``. We look at
the syntax tree of the graded function or class (and module-level aliases such as
``sm = torch.softmax`` or ``from torch.nn.functional import softmax``) for banned names, in any form:
``torch.softmax(x)``, ``F.softmax``, ``x.softmax(-1)``, ``getattr(torch, "softmax")``.
This is a static check: it is stated to students as "do not call these", and it is strict on the
names, not clever about evasion.
"""

from __future__ import annotations

import ast

from .student.notebook import Extraction


def _top(module: str | None) -> str:
    return (module or "").split(".")[0]


def _module_aliases(tree: ast.Module, banned: set[str]) -> dict[str, str]:
    """Module-level names that are bound to a banned API: {alias: banned name}. A banned name may be
    a module (``tiktoken``): then every name imported from it is an alias too."""
    aliases = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if _top(a.name) in banned:
                    aliases[a.asname or _top(a.name)] = _top(a.name)
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name in banned or _top(node.module) in banned:
                    aliases[a.asname or a.name] = a.name if a.name in banned else _top(node.module)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute) and node.value.attr in banned:
            for t in node.targets:
                if isinstance(t, ast.Name):
                    aliases[t.id] = node.value.attr
    return aliases


def find_banned(node: ast.AST, banned: set[str], aliases: dict[str, str]) -> list[tuple[int, str]]:
    hits = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in banned:
            hits.append((sub.lineno, sub.attr))
        elif isinstance(sub, ast.Name) and sub.id in aliases:
            hits.append((sub.lineno, aliases[sub.id]))
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and sub.value in banned:
            hits.append((sub.lineno, sub.value))  # getattr(torch, "softmax")
        elif isinstance(sub, ast.ImportFrom):
            if _top(sub.module) in banned:
                hits.append((sub.lineno, _top(sub.module)))
            hits += [(sub.lineno, a.name) for a in sub.names if a.name in banned]
        elif isinstance(sub, ast.Import):
            hits += [(sub.lineno, _top(a.name)) for a in sub.names if _top(a.name) in banned]
    return hits


def _helpers_used(node: ast.AST, extraction: Extraction, graded: set[str]) -> list:
    """Module-level definitions (functions, classes, constants) the definition refers to, transitively,
    other than graded ones (those are graded on their own: calling your own ``softmax`` from attention
    is the point)."""
    seen: dict[str, object] = {}
    stack = [node]
    while stack:
        for sub in ast.walk(stack.pop()):
            if isinstance(sub, ast.Name) and sub.id not in graded and sub.id not in seen:
                stmt = extraction.where(sub.id)
                if stmt is not None:  # a function, a class, or a constant it reads (``BASE = ...``)
                    seen[sub.id] = stmt
                    stack.append(ast.parse(stmt.source))
    return list(seen.values())


# Banned in every exercise: ways to reach the grading process's own objects from inside the worker
# (the kit's trusted parts, the worker's state). Graded code has no use for them.
INTROSPECTION = ("__main__", "gc", "_getframe", "currentframe", "f_back", "f_globals", "f_locals", "tb_frame",
                 "gi_frame", "cr_frame", "get_objects", "get_referrers", "get_referents", "__subclasses__")


def check_banned(extraction: Extraction, rules: dict[str, tuple[str, ...]], definitions: dict[str, str]) -> dict[str, str]:
    """Return {exercise: message} for every exercise whose graded definition uses a banned API,
    directly or through a helper function of the submission it calls.

    ``rules`` maps exercise -> banned names; ``definitions`` maps exercise -> the name it defines.
    """
    module_tree = ast.parse(extraction.source)
    graded = set(definitions.values())
    violations = {}
    for exercise in definitions:
        banned = set(rules.get(exercise, ())) | set(INTROSPECTION)
        aliases = _module_aliases(module_tree, banned)
        stmt = extraction.where(definitions[exercise])
        if stmt is None:
            continue
        node = ast.parse(stmt.source)
        for where in [stmt] + _helpers_used(node, extraction, graded):
            hits = find_banned(ast.parse(where.source), banned, aliases)
            if hits:
                line, name = hits[0]
                via = "" if where is stmt else f" through `{where.names[0]}`"
                if name in INTROSPECTION and name not in rules.get(exercise, ()):
                    violations[exercise] = (
                        f"`{definitions[exercise]}` uses `{name}`{via} (cell {where.cell}, line "
                        f"{where.line + line - 1}): graded code may not inspect the interpreter's own objects "
                        f"({', '.join(INTROSPECTION)}). The exercise scores 0 until it is removed.")
                    break
                violations[exercise] = (
                    f"`{definitions[exercise]}` uses `{name}`{via} (cell {where.cell}, line {where.line + line - 1}), "
                    f"which this exercise asks you to write yourself. Banned here: {', '.join(sorted(rules[exercise]))}. "
                    "The exercise scores 0 until it is removed."
                )
                break
    return violations
