"""The instructor notebook runs top to bottom in a real Jupyter kernel, and every check cell passes.

This is what a student sees after solving everything: it catches demos that break, check cells that
cannot find ``public_tests.py``, and a figure that no longer renders.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "assignments" / "w02_attention" / "attention.ipynb"
# Headless, but still Jupyter's own inline backend: plain "Agg" would render nothing into the notebook
# (plt.show() is a no-op there), so the figure check below could never pass with it.
INLINE = "module://matplotlib_inline.backend_inline"


def _kernel_name() -> str:
    """The python3 kernel of this environment (ipykernel's native spec; nothing is installed)."""
    specs = KernelSpecManager().find_kernel_specs()
    assert "python3" in specs, f"no python3 kernelspec: {specs}"
    return "python3"


def _text(output) -> str:
    if output.output_type == "stream":
        return output.text
    if output.output_type in ("execute_result", "display_data"):
        return output.data.get("text/plain", "")
    if output.output_type == "error":
        return "\n".join(output.traceback)
    return ""


def run_notebook(path: Path, monkeypatch) -> list:
    """Execute ``path`` in a fresh kernel (cwd = its folder); returns its code cells, with outputs."""
    monkeypatch.setenv("MPLBACKEND", INLINE)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # do not leave caches in assignments/
    monkeypatch.delenv("PYTHONPATH", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name=_kernel_name(),
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the failing cell, if any cell raises
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code_cells), "some code cells did not run"
    assert not [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    return code_cells


def assert_checks_pass(code_cells, exercises: list[str]) -> None:
    checks = [c for c in code_cells if c.source.strip().startswith("check(")]
    assert [re.match(r'check\("(\w+)"\)', c.source.strip()).group(1) for c in checks] == exercises
    for cell in checks:
        text = "\n".join(_text(o) for o in cell.outputs)
        summary = re.search(r"(\d+)/(\d+) public checks passed", text)
        assert summary, f"{cell.source!r} printed no summary: {text!r}"
        assert summary.group(1) == summary.group(2) and int(summary.group(2)) >= 2, text
        assert "FAIL" not in text
        html = "".join(o.data.get("text/html", "") for o in cell.outputs if "data" in o)
        assert "&#10004;" in html and "&#10008;" not in html  # the coloured list students see


def test_tokenization_notebook_runs_and_all_checks_pass(monkeypatch):
    cells = run_notebook(ROOT / "assignments" / "w01_tokenization" / "tokenization.ipynb", monkeypatch)
    assert_checks_pass(cells, ["train_bpe", "bpe_tokenizer"])
    by_id = {c.get("id"): c for c in cells}
    assert any("image/png" in o.get("data", {}) for o in by_id["compression-demo"].outputs), "no compression plot"
    assert any("text/html" in o.get("data", {}) for o in by_id["visualise-demo"].outputs), "no token visual"
    assert "stderr" in {o.output_type == "stream" and o.name for o in by_id["compression-demo"].outputs} or any(
        "it/s" in _text(o) or "%|" in _text(o) for o in by_id["compression-demo"].outputs), "no progress bar"


def test_attention_notebook_runs_and_all_checks_pass(monkeypatch):
    code_cells = run_notebook(NOTEBOOK, monkeypatch)
    assert_checks_pass(code_cells, ["softmax", "causal_mask", "scaled_dot_product_attention", "multi_head_attention"])

    attention_map = next(c for c in code_cells if c.get("id") == "attention-map-demo")
    assert any("image/png" in o.get("data", {}) for o in attention_map.outputs), "the attention map was not drawn"
    printed = "".join(_text(o) for o in attention_map.outputs)
    assert "weights @ V equals your attention output: True" in printed

    everything = "\n".join(_text(o) for c in code_cells for o in c.outputs)
    assert "matches PyTorch (causal): True" in everything
    assert "GPT-2 small attention layer: 2,362,368 parameters" in everything
    assert "same as mha(x): True" in everything
