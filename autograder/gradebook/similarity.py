"""Pairs of submissions whose code is suspiciously alike, after normalising names and formatting.

For each submission, the graded definitions (functions and classes, as the grader extracts them) are
normalised: docstrings and comments dropped, the code re-printed from its syntax tree (so formatting does not
matter), and every local name (arguments, variables, inner functions, attributes of ``self``) renamed to
``v0, v1, ...`` in order of first use (so renaming does not matter); names from outside (``torch``, ``math``,
builtins, the exercise functions themselves) stay. The normalised tokens are cut into overlapping 8-token
fragments; fragments of the released starter code, and fragments that a large share of the class has (the
natural way to write a line), are ignored. Two submissions' score is the share of their remaining fragments they
have in common (Jaccard).

A high score is a reason for a TA to look, never proof: short exercises have few ways to be written. The report
shows the score in words and the two most alike definitions side by side.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import io
import tokenize
from dataclasses import dataclass

K = 8
THRESHOLD = 0.8
MIN_FRAGMENTS = 25
COMMON_SHARE = 0.5  # fragments in more than this share of the class are ignored


class _Rename(ast.NodeTransformer):
    def __init__(self, keep: set[str]):
        self.keep = keep
        self.names: dict[str, str] = {}

    def _new(self, name: str) -> str:
        if name in self.keep:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node):
        node.id = self._new(node.id)
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):  # the student's own attributes
            node.attr = self.names.setdefault("." + node.attr, f"a{len(self.names)}")
        return node

    def visit_arg(self, node):
        node.arg = self._new(node.arg)
        node.annotation = None
        return node

    def visit_FunctionDef(self, node):
        node.name = self._new(node.name)
        node.returns = None
        _drop_docstring(node)
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.name = self._new(node.name)
        _drop_docstring(node)
        self.generic_visit(node)
        return node


def _drop_docstring(node) -> None:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]


def _imported_names(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            out.update(a.asname or a.name for a in node.names)
    return out


def definitions(nb: dict) -> dict[str, str]:
    """name -> source of each top-level function or class the grader would keep (the last one wins)."""
    from ..student.notebook import extract

    out = {}
    for st in extract(nb).statements:
        try:
            node = ast.parse(st.source).body[0]
        except (SyntaxError, IndexError):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = st.source
    return out


def normalise(source: str, keep: set[str]) -> list[str]:
    """Tokens of ``source`` with local names canonical, no docstrings, comments or formatting."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    keep = keep | _imported_names(tree) | set(dir(builtins)) | {"self", "cls"}
    tree = _Rename(keep).visit(tree)
    text = ast.unparse(tree)
    tokens = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT,
                        tokenize.ENDMARKER):
            continue
        tokens.append("S" if tok.type == tokenize.STRING else tok.string)
    return tokens


def fragments(tokens: list[str]) -> set[str]:
    return {hashlib.blake2b(" ".join(tokens[i:i + K]).encode(), digest_size=8).hexdigest()
            for i in range(max(0, len(tokens) - K + 1))}


@dataclass
class Doc:
    key: object  # what the caller uses to find the submission again
    label: str
    defs: dict[str, str]
    per_def: dict[str, set[str]]
    all: set[str]


@dataclass
class Pair:
    a: Doc
    b: Doc
    score: float
    definition: str  # the most alike definition
    definition_score: float

    @property
    def words(self) -> str:
        pct = round(100 * self.score)
        level = "identical" if pct >= 99 else "very high" if pct >= 90 else "high"
        return (f"{level}: {pct}% of the code fragments are the same once variables are renamed and the code is "
                f"reformatted (most alike: {self.definition}, {round(100 * self.definition_score)}%)")


def build_docs(items: list[tuple[object, str, dict]], keep: set[str], starter: dict | None = None) -> list[Doc]:
    """``items``: (key, label, notebook dict). ``keep``: exercise names; ``starter``: the released notebook."""
    starter_frags: set[str] = set()
    if starter is not None:
        for src in definitions(starter).values():
            starter_frags |= fragments(normalise(src, keep))
    docs = []
    for key, label, nb in items:
        defs = definitions(nb) if nb else {}
        per_def = {name: fragments(normalise(src, keep)) - starter_frags for name, src in defs.items()}
        docs.append(Doc(key, label, defs, per_def, set().union(*per_def.values()) if per_def else set()))
    if len(docs) >= 4:  # fragments most of the class shares are how everyone writes that line
        counts: dict[str, int] = {}
        for d in docs:
            for f in d.all:
                counts[f] = counts.get(f, 0) + 1
        common = {f for f, n in counts.items() if n > COMMON_SHARE * len(docs)}
        for d in docs:
            d.all -= common
            d.per_def = {k: v - common for k, v in d.per_def.items()}
    return docs


def similar_pairs(docs: list[Doc], threshold: float = THRESHOLD) -> list[Pair]:
    pairs = []
    for i, a in enumerate(docs):
        if len(a.all) < MIN_FRAGMENTS:
            continue
        for b in docs[i + 1:]:
            if len(b.all) < MIN_FRAGMENTS:
                continue
            inter = len(a.all & b.all)
            score = inter / len(a.all | b.all)
            if score < threshold:
                continue
            best, best_score = "", -1.0
            for name in a.per_def.keys() & b.per_def.keys():
                fa, fb = a.per_def[name], b.per_def[name]
                if fa | fb:
                    s = len(fa & fb) / len(fa | fb)
                    weight = s * len(fa | fb)
                    if weight > best_score:
                        best, best_score = name, weight
            if best:
                fa, fb = a.per_def[best], b.per_def[best]
                pairs.append(Pair(a, b, score, best, len(fa & fb) / len(fa | fb)))
            else:
                pairs.append(Pair(a, b, score, "", 0.0))
    return sorted(pairs, key=lambda p: -p.score)
