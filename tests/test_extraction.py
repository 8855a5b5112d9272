"""Extraction of a student's definitions from a notebook (``autograder/student/notebook.py``).

Grading and ``llmkit check`` run only what ``extract`` keeps, so what it keeps and what it drops decides
what a student's notebook means to the grader. Nothing in a notebook may run while it is extracted.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from autograder.student.notebook import NotebookError, extract, extract_file, read_notebook, strip_magics

ROOT = Path(__file__).resolve().parents[1]


def nb(*cells) -> dict:
    """A notebook of code cells (a str) and markdown cells (("md", text))."""
    out = []
    for c in cells:
        if isinstance(c, tuple):
            out.append({"cell_type": "markdown", "metadata": {}, "source": c[1]})
        else:
            out.append({"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None})
    return {"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def run(extraction) -> dict:
    names: dict = {}
    exec(compile(extraction.source, "<extracted>", "exec"), names)
    return names


def test_keeps_imports_definitions_and_simple_constants():
    ex = extract(nb(
        "import math\nimport torch.nn as nn\nimport os.path\nfrom collections import OrderedDict as OD, deque\n",
        "def f(x):\n    return x + 1\n\nasync def g():\n    return 1\n",
        "class A:\n    k = 1\n    def m(self):\n        return 2\n",
        'CFG = {"emb_dim": 64, "drop": 0.1, "layers": [1, 2], "pair": (1, -2)}\n'
        "EPS = 1e-5\nNEG = -1\nPOS = +3\nSIZE = 4 * 256\nNAMES = ['a', 'b']\nEMPTY = ()\nS = {1, 2}\n"
        "NOTHING = None\nFLAG = True\nTEXT = 'x'\nx: int = 3\na = b = 7\n",
    ))
    assert ex.syntax_errors == []
    assert ex.defined() == {"math", "nn", "os", "OD", "deque", "f", "g", "A", "CFG", "EPS", "NEG", "POS",
                            "SIZE", "NAMES", "EMPTY", "S", "NOTHING", "FLAG", "TEXT", "x", "a", "b"}
    names = run(ex)
    assert names["f"](1) == 2 and names["A"]().m() == 2
    assert names["CFG"] == {"emb_dim": 64, "drop": 0.1, "layers": [1, 2], "pair": (1, -2)}
    assert (names["NEG"], names["POS"], names["SIZE"], names["EPS"]) == (-1, 3, 1024, 1e-5)
    assert names["a"] == names["b"] == 7 and names["x"] == 3


def test_decorated_definitions_keep_their_decorators():
    ex = extract(nb(
        "import functools\n\n\n@functools.lru_cache(maxsize=None)\n@staticmethod\ndef f(x):\n    return x\n",
        "from dataclasses import dataclass\n\n@dataclass\nclass P:\n    x: int = 0\n",
    ))
    f = ex.where("f")
    assert f.source.startswith("@functools.lru_cache(maxsize=None)\n@staticmethod\ndef f(x):")
    assert (f.cell, f.line) == (1, 4)  # the decorator's line, so messages point at the top of the definition
    assert ex.where("P").source.startswith("@dataclass\nclass P:")
    assert run(ex)["P"]().x == 0


def test_drops_top_level_code():
    ex = extract(nb(
        "import torch\nprint('hello')\nx = torch.randn(3)\ny = len([1])\nz = some_name\nw = [f(i) for i in range(3)]\n"
        "for i in range(3):\n    pass\nwhile False:\n    pass\nwith open('f') as fh:\n    pass\n"
        "if __name__ == '__main__':\n    main()\ntry:\n    import foo\nexcept ImportError:\n    pass\n"
        "model.weight = 3\nd['k'] = 1\ncount += 1\nlambda_ = lambda v: v\nfrom __future__ import annotations\n",
    ))
    assert ex.defined() == {"torch"}
    assert ex.source == "import torch\n"
    kinds = [s.split(": ", 1)[1] for s in ex.skipped]
    assert kinds == ["Expr", "Assign", "Assign", "Assign", "Assign", "For", "While", "With", "If", "Try",
                     "Assign", "Assign", "AugAssign", "Assign", "ImportFrom"]
    assert ex.skipped[0] == "cell 1, line 2: Expr"


def test_markdown_and_raw_cells_are_ignored():
    doc = nb(("md", "def not_code():\n    pass\n"), "def f():\n    pass\n")
    doc["cells"].append({"cell_type": "raw", "metadata": {}, "source": "def raw(): pass"})
    ex = extract(doc)
    assert ex.defined() == {"f"} and ex.where("f").cell == 2


def test_ipython_line_magics_do_not_break_a_cell():
    ex = extract(nb(
        "%matplotlib inline\n!pip install tiktoken\nimport torch\n%timeit torch.zeros(3)\ntorch.zeros?\n"
        "softmax??\n  %load_ext autoreload\ndef f(x):\n    return x\n",
    ))
    assert ex.syntax_errors == []
    assert ex.defined() == {"torch", "f"}
    assert (ex.where("f").cell, ex.where("f").line) == (1, 8)  # magics are blanked, not removed: lines still match


def test_a_magic_that_is_a_whole_block_body_still_parses():
    ex = extract(nb("import torch\nfor i in range(3):\n    %time torch.zeros(3)\nfiles = !ls\ndef f():\n    return 1\n"))
    assert ex.syntax_errors == []
    assert ex.defined() == {"torch", "f"} and ex.where("f").line == 5


def test_module_attribute_aliases_are_kept():
    ex = extract(nb("import torch\nF = torch.nn.functional\nsm = torch.softmax\nx = torch.randn(3)\n"))
    assert ex.defined() == {"torch", "F", "sm"}


def test_strip_magics_keeps_line_numbers():
    src = "%time x = 1\ndef f():\n    return 1\n!ls"
    out = strip_magics(src)
    assert out.split("\n") == ["", "def f():", "    return 1", ""]
    assert strip_magics("a = 1 % 2\nb = x != 3\nc = 'what?'\n") == "a = 1 % 2\nb = x != 3\nc = 'what?'"


def test_a_cell_magic_cell_is_skipped_whole():
    ex = extract(nb("%%time\ndef slow():\n    return 1\n", "  %%writefile x.py\nprint(1)\n", "def f():\n    return 2\n"))
    assert ex.defined() == {"f"}
    assert ex.skipped == ["cell 1: cell magic", "cell 2: cell magic"]
    assert ex.syntax_errors == []


def test_a_syntax_error_is_reported_and_other_cells_still_extract():
    ex = extract(nb(
        "def ok():\n    return 1\n",
        "import torch\n\ndef softmax(x, dim=-1):\n    return x.exp(\n",
        ("md", "text"),
        "def causal_mask(T):\n    return T\n",
    ))
    assert len(ex.syntax_errors) == 1
    err = ex.syntax_errors[0]
    assert err.startswith("cell 2, line 4:"), err
    assert "everything defined in this cell is missing" in err
    assert ex.defined() == {"ok", "causal_mask"}  # the broken cell's import is missing too
    assert ex.where("causal_mask").cell == 4


def test_later_definitions_win():
    ex = extract(nb(
        "def softmax(x):\n    return 'first'\n",
        "def helper():\n    pass\n",
        "def softmax(x):\n    return 'second'\n",
        "LIMIT = 1\nLIMIT = 2\n",
    ))
    st = ex.where("softmax")
    assert (st.cell, st.line) == (3, 1) and "second" in st.source
    assert [s.cell for s in ex.statements if "softmax" in s.names] == [1, 3]  # order kept, as when run top to bottom
    names = run(ex)
    assert names["softmax"](0) == "second" and names["LIMIT"] == 2
    assert ex.where("nothing") is None


def test_statements_record_cell_and_line():
    ex = extract(nb("import torch\n\n\nclass M:\n    pass\n", "\n\nX = 1\n"))
    assert [(s.names, s.cell, s.line) for s in ex.statements] == [(["torch"], 1, 1), (["M"], 1, 4), (["X"], 2, 3)]
    for s in ex.statements:
        ast.parse(s.source)


def test_source_as_list_of_lines_is_accepted(tmp_path):
    doc = nb("x")
    doc["cells"][0]["source"] = ["import math\n", "def f():\n", "    return math.pi\n"]
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(doc))
    ex = extract_file(path)
    assert ex.defined() == {"math", "f"}


def test_nothing_runs_during_extraction(tmp_path):
    marker = tmp_path / "ran.txt"
    hostile = (
        f"open({str(marker)!r}, 'w').write('top level')\n"
        f"x = open({str(marker)!r}, 'w')\n"
        f"XX = open({str(marker)!r}, 'w')  # kept (a CONSTANT), but only run later, in the worker\n"
        f"def f(a=open({str(marker)!r}, 'w')):\n    pass\n"
        f"@(lambda fn: open({str(marker)!r}, 'w'))\ndef g():\n    pass\n"
        f"class C(metaclass=type(open({str(marker)!r}, 'w'))):\n    pass\n"
        "import this_module_does_not_exist_anywhere\n"
    )
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb(hostile, f"%%bash\ntouch {marker}\n", f"!touch {marker}\n")))
    ex = extract_file(path)
    assert not marker.exists()
    assert ex.defined() == {"XX", "f", "g", "C", "this_module_does_not_exist_anywhere"}
    assert "this_module_does_not_exist_anywhere" not in __import__("sys").modules


def test_extract_file_reads_plain_python(tmp_path):
    path = tmp_path / "solution.py"
    path.write_text("import torch\n\ndef causal_mask(T):\n    return torch.ones(T)\n\ncausal_mask(3)\n")
    ex = extract_file(path)
    assert ex.defined() == {"torch", "causal_mask"} and ex.where("causal_mask").line == 3


def test_the_instructor_notebook_extracts_every_graded_name():
    ex = extract_file(ROOT / "assignments" / "w02_attention" / "attention.ipynb")
    assert ex.syntax_errors == []
    assert {"softmax", "causal_mask", "scaled_dot_product_attention", "MultiHeadAttention"} <= ex.defined()
    # demo code is not kept: the demos build tensors and plots at top level
    assert "fig" not in ex.defined() and "weights" not in ex.defined() and "check" not in ex.defined()


# ---------------------------------------------------------------------------------------------
# read_notebook: unreadable notebooks get a message a student can act on
# ---------------------------------------------------------------------------------------------


def test_truncated_json(tmp_path):
    path = tmp_path / "attention.ipynb"
    path.write_text(json.dumps(nb("def f():\n    pass\n"))[:40])
    with pytest.raises(NotebookError) as info:
        read_notebook(path)
    message = str(info.value)
    assert "attention.ipynb is not valid notebook JSON" in message
    assert "git checkout" in message  # tells the student how to recover


def test_json_that_is_not_a_notebook(tmp_path):
    for payload in ([1, 2], {"cells": "nope", "nbformat": 4}, {"cells": [], "nbformat": 3}, {"hello": 1}, "str"):
        path = tmp_path / "attention.ipynb"
        path.write_text(json.dumps(payload))
        with pytest.raises(NotebookError, match="attention.ipynb is not a Jupyter notebook in format 4"):
            read_notebook(path)


def test_missing_file(tmp_path):
    with pytest.raises(NotebookError, match="no such notebook"):
        read_notebook(tmp_path / "missing.ipynb")
    with pytest.raises(NotebookError, match="no such notebook"):
        read_notebook(tmp_path)  # a folder is not a notebook


def test_deeply_nested_json_is_a_notebook_error(tmp_path):
    path = tmp_path / "deep.ipynb"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(NotebookError):
        read_notebook(path)


def test_odd_but_readable_notebooks(tmp_path):
    doc = nb("def f():\n    return 1\n")
    doc["cells"] += ["not a cell", {"cell_type": "code", "source": "X = 1", "metadata": None}]
    path = tmp_path / "n.ipynb"
    path.write_bytes(json.dumps(doc).encode() + b"")
    got = read_notebook(path)
    assert len(got["cells"]) == 2 and got["cells"][1]["metadata"] == {}
    assert extract(got).defined() == {"f", "X"}
    path.write_bytes(json.dumps(doc).encode().replace(b"return 1", b"return '\xff'"))  # invalid UTF-8
    assert "f" in extract(read_notebook(path)).defined()


def test_constant_case_names_keep_computed_values():
    ex = extract(nb("import regex\nPAT = regex.compile('a+')\n_INF = float('inf')\npat = regex.compile('b')\n"
                    "Mixed_Case = len('x')\n"))
    assert ex.defined() == {"regex", "PAT", "_INF"}


def test_display_only_imports_are_not_run_in_the_worker():
    """Plotting is never graded: its imports are not sent to the worker (they cost seconds per grade)."""
    from autograder.grading import _statements

    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": src} for src in (
        "import matplotlib.pyplot as plt\nfrom IPython.display import HTML\nimport seaborn as sns",
        "import torch, matplotlib\nfrom torch import nn\n\ndef f(x):\n    return x",
    )]}
    sent = [s["source"] for s in _statements(extract(nb))]
    assert sent == ["import torch, matplotlib", "from torch import nn", "def f(x):\n    return x"]
