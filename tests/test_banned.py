"""Banned APIs inside graded definitions (``autograder/banned.py``), with week 2's rules.

The check is static and strict on names: ``torch.softmax`` in any spelling inside the graded
``softmax`` zeroes that exercise; the same call in a demo cell, a demo function, or a student's own
``softmax`` used by a later exercise is fine.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from autograder.banned import check_banned
from autograder.student.notebook import Extraction, Statement, extract
from autograder.suites.w02_attention import ASSIGNMENT

ROOT = Path(__file__).resolve().parents[1]
RULES = {ex.name: ex.banned for ex in ASSIGNMENT.exercises if ex.banned}
DEFINES = {ex.name: ex.defines for ex in ASSIGNMENT.exercises}

GOOD_SOFTMAX = """import torch


def softmax(x, dim=-1):
    m = x.amax(dim=dim, keepdim=True)
    e = torch.exp(x - m)
    return e / e.sum(dim=dim, keepdim=True)
"""
GOOD_MASK = "def causal_mask(T):\n    return torch.tril(torch.ones(T, T, dtype=torch.bool))\n"
GOOD_SDPA = """import math


def scaled_dot_product_attention(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return softmax(scores, dim=-1) @ v
"""
GOOD_MHA = """import torch.nn as nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        return scaled_dot_product_attention(x, x, x, causal_mask(x.shape[1]))
"""


def cells(*sources) -> dict:
    return {"cells": [{"cell_type": "code", "metadata": {}, "source": s} for s in sources], "nbformat": 4}


def violations(*sources) -> dict[str, str]:
    return check_banned(extract(cells(*sources)), RULES, DEFINES)


def test_rules_come_from_the_assignment():
    assert {"softmax", "log_softmax", "Softmax"} <= set(RULES["softmax"])
    assert "causal_mask" not in RULES
    assert {"scaled_dot_product_attention", "MultiheadAttention", "softmax"} <= set(RULES["multi_head_attention"])


def test_a_clean_submission_has_no_violations():
    assert violations(GOOD_SOFTMAX, GOOD_MASK, GOOD_SDPA, GOOD_MHA) == {}


@pytest.mark.parametrize("body, banned", [
    ("    return torch.softmax(x, -1)", "softmax"),
    ("    return torch.softmax(x, dim=dim)", "softmax"),
    ("    return F.softmax(x, dim)", "softmax"),
    ("    return torch.nn.functional.softmax(x, dim)", "softmax"),
    ("    return x.softmax(-1)", "softmax"),
    ("    return x.log_softmax(dim).exp()", "log_softmax"),
    ("    return torch.nn.Softmax(dim=dim)(x)", "Softmax"),
    ("    return nn.LogSoftmax(dim)(x).exp()", "LogSoftmax"),
    ('    return getattr(torch, "softmax")(x, dim)', "softmax"),
    ("    from torch.nn.functional import softmax as sm\n    return sm(x, dim)", "softmax"),
    ("    f = torch.softmax\n    return f(x, dim)", "softmax"),
    ("    def inner(y):\n        return y.softmax(dim)\n    return inner(x)", "softmax"),
])
def test_banned_softmax_in_any_spelling(body, banned):
    found = violations("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
                       f"def softmax(x, dim=-1):\n{body}\n", GOOD_MASK, GOOD_SDPA)
    assert set(found) == {"softmax"}
    assert f"`softmax` uses `{banned}`" in found["softmax"]


def test_message_names_function_banned_name_cell_and_line():
    source = ("import torch\n"                       # line 1
              "\n"                                   # line 2
              "def softmax(x, dim=-1):\n"            # line 3
              '    """docstring"""\n'                # line 4
              "    y = x * 1\n"                      # line 5
              "    return torch.softmax(y, dim)\n")  # line 6
    found = violations(GOOD_MASK, "print('demo')", source)
    message = found["softmax"]
    assert "`softmax` uses `softmax` (cell 3, line 6)" in message
    assert "Banned here: LogSoftmax, Softmax, log_softmax, softmax" in message
    assert "scores 0" in message


def test_attention_apis_are_banned_in_sdpa_and_mha():
    sdpa = ("import torch\n\n"
            "def scaled_dot_product_attention(q, k, v, mask=None):\n"
            "    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)\n")
    mha = ("import torch.nn as nn\n\n"
           "class MultiHeadAttention(nn.Module):\n"
           "    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):\n"
           "        super().__init__()\n"
           "        self.attn = nn.MultiheadAttention(d_out, num_heads, batch_first=True)\n"
           "    def forward(self, x):\n"
           "        return self.attn(x, x, x)[0]\n")
    found = violations(GOOD_SOFTMAX, GOOD_MASK, sdpa, mha)
    assert set(found) == {"scaled_dot_product_attention", "multi_head_attention"}
    assert "`scaled_dot_product_attention` uses `scaled_dot_product_attention` (cell 3, line 4)" in \
        found["scaled_dot_product_attention"]
    assert "`MultiHeadAttention` uses `MultiheadAttention` (cell 4, line 6)" in found["multi_head_attention"]


def test_torch_softmax_in_mha_forward_is_flagged():
    mha = GOOD_MHA.replace("return scaled_dot_product_attention(x, x, x, causal_mask(x.shape[1]))",
                           "return torch.softmax(x @ x.transpose(1, 2), -1) @ x")
    found = violations(GOOD_SOFTMAX, GOOD_MASK, GOOD_SDPA, mha)
    assert set(found) == {"multi_head_attention"}
    assert "`MultiHeadAttention` uses `softmax` (cell 4, line 10)" in found["multi_head_attention"]


def test_module_level_import_alias_is_flagged():
    found = violations("import torch\nfrom torch.nn.functional import softmax as s\n",
                       "def softmax(x, dim=-1):\n    return s(x, dim)\n")
    assert "`softmax` uses `softmax` (cell 2, line 2)" in found["softmax"]


def test_module_level_assignment_alias_is_flagged_by_check_banned():
    """check_banned resolves `sm = torch.softmax` when the alias is part of the extraction."""
    extraction = Extraction(statements=[
        Statement("import torch", 1, 1, ["torch"]),
        Statement("sm = torch.softmax", 1, 2, ["sm"]),
        Statement("def softmax(x, dim=-1):\n    return sm(x, dim)", 2, 1, ["softmax"]),
    ])
    found = check_banned(extraction, RULES, DEFINES)
    assert "`softmax` uses `softmax` (cell 2, line 2)" in found["softmax"]


def test_module_level_assignment_alias_is_flagged_from_a_notebook():
    found = violations("import torch\nsm = torch.softmax\n", "def softmax(x, dim=-1):\n    return sm(x, dim)\n")
    assert "`softmax` uses `softmax`" in found.get("softmax", "")


def test_students_own_softmax_inside_sdpa_is_fine():
    assert violations(GOOD_SOFTMAX, GOOD_SDPA) == {}
    sdpa_with_dim = GOOD_SDPA.replace("softmax(scores, dim=-1)", "softmax(scores, -1)")
    assert violations(GOOD_SOFTMAX, sdpa_with_dim) == {}


def test_torch_softmax_in_demo_code_is_fine():
    demo_function = ("import torch\n\ndef compare(x):\n    return torch.softmax(x, -1), softmax(x)\n")
    demo_cell = "x = torch.randn(3)\nprint(torch.softmax(x, dim=-1), F.softmax(x, -1), x.softmax(-1))\n"
    import_demo = "import torch.nn.functional as F\n"
    assert violations(GOOD_SOFTMAX, demo_function, demo_cell, import_demo, GOOD_MASK, GOOD_SDPA, GOOD_MHA) == {}


def test_only_the_exercise_with_the_violation_is_reported():
    bad_sdpa = GOOD_SDPA.replace("return softmax(scores, dim=-1) @ v", "return scores.softmax(-1) @ v")
    found = violations(GOOD_SOFTMAX, GOOD_MASK, bad_sdpa, GOOD_MHA)
    assert list(found) == ["scaled_dot_product_attention"]


def test_the_last_definition_is_the_one_checked():
    banned = "import torch\n\ndef softmax(x, dim=-1):\n    return torch.softmax(x, dim)\n"
    assert violations(banned, GOOD_SOFTMAX) == {}  # replaced by a later, clean definition
    found = violations(GOOD_SOFTMAX, banned)
    assert "(cell 2, line 4)" in found["softmax"]


def test_missing_definitions_are_not_violations():
    assert violations("import torch\nx = torch.softmax(torch.zeros(2), -1)\n") == {}


def test_the_instructor_notebook_is_clean():
    nb = nbformat.read(ROOT / "assignments" / "w02_attention" / "attention.ipynb", as_version=4)
    as_dict = {"cells": [{"cell_type": c.cell_type, "source": c.source} for c in nb.cells]}
    assert check_banned(extract(as_dict), RULES, DEFINES) == {}


# ---------------------------------------------------------------------------------------------
# End to end: grading zeroes the exercise, and only that exercise
# ---------------------------------------------------------------------------------------------


def test_grading_zeroes_an_exercise_that_uses_a_banned_api(tmp_path):
    from autograder.grading import grade

    nb = nbformat.read(ROOT / "assignments" / "w02_attention" / "attention.ipynb", as_version=4)
    cell_index, cell = next((i, c) for i, c in enumerate(nb.cells, start=1)
                            if c.metadata.get("nbgrader", {}).get("grade_id") == "softmax")
    head = cell.source.split("    ### BEGIN SOLUTION")[0]
    cell.source = head + "    return torch.softmax(x, dim=dim)\n"
    banned_line = len(cell.source.splitlines())
    path = tmp_path / "attention.ipynb"
    nbformat.write(nb, path)

    result = grade(path, "w02_attention")
    scores = result.exercise_scores()
    assert scores["softmax"][0] == 0 and scores["softmax"][1] > 0
    assert scores["causal_mask"][0] == scores["causal_mask"][1] > 0
    # softmax still *works*, so the exercises that call it are unaffected
    assert scores["scaled_dot_product_attention"][0] == scores["scaled_dot_product_attention"][1]
    assert set(result.banned) == {"softmax"}
    softmax_tests = [t for t in result.tests if t.exercise == "softmax"]
    assert softmax_tests
    for t in softmax_tests:
        assert t.status == "fail" and t.points == 0
        assert t.message == result.banned["softmax"]
        assert f"`softmax` uses `softmax` (cell {cell_index}, line {banned_line})" in t.message


@pytest.mark.parametrize("body", [
    "    import __main__\n    return __main__.parts\n",
    "    return __import__('__main__')\n",
    "    import gc\n    return [o for o in gc.get_objects() if isinstance(o, type)]\n",
    "    import sys\n    return sys._getframe(1).f_locals\n",
    "    return object.__subclasses__()\n",
])
def test_reaching_into_the_graders_objects_is_banned_in_every_exercise(body):
    """Introspection that could reach the worker's trusted parts zeroes the exercise, even one (causal_mask)
    that bans nothing else."""
    found = violations(GOOD_SOFTMAX, "import torch\n\ndef causal_mask(T):\n" + body)
    assert set(found) == {"causal_mask"}
    assert "may not inspect the interpreter's own objects" in found["causal_mask"]


def test_a_constant_a_definition_reads_is_checked_too():
    """``class MultiHeadAttention(BASE)`` with ``BASE = __import__("__main__")...`` is caught through BASE."""
    found = violations(GOOD_SOFTMAX, GOOD_MASK, GOOD_SDPA,
                       "BASE = __import__('__main__').Worker\n\nclass MultiHeadAttention(BASE):\n    pass\n")
    assert "through `BASE`" in found["multi_head_attention"]
