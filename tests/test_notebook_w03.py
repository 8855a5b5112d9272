"""Week 3's instructor notebook runs top to bottom in a real Jupyter kernel, and every check cell passes.

What a student sees after solving everything: the check cells find ``public_tests.py`` and pass, the demos
run (on this CPU, in well under two minutes), the plots render, and the numbers the text states come out.
"""

from __future__ import annotations

from pathlib import Path

from test_notebook_runs import _text, assert_checks_pass, run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "assignments" / "w03_gpt" / "gpt.ipynb"
EXERCISES = ["layer_norm", "gelu", "feed_forward", "transformer_block", "gpt_model", "top_k_filter", "top_p_filter",
             "generate", "generate_cached"]


def _outputs(cell) -> str:
    return "".join(_text(o) for o in cell.outputs)


def _has_figure(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def test_gpt_notebook_runs_and_all_checks_pass(monkeypatch):
    code_cells = run_notebook(NOTEBOOK, monkeypatch)
    assert_checks_pass(code_cells, EXERCISES)
    by_id = {c.get("id"): c for c in code_cells}

    # the figures: GELU versus ReLU, the next-token distributions, the KV-cache timing
    for cell_id in ("gelu-plot", "distribution-plot", "kv-cache-timing"):
        assert _has_figure(by_id[cell_id]), f"{cell_id} drew no figure"

    # the numbers the text states
    everything = "\n".join(_outputs(c) for c in code_cells)
    assert "GPT-2 small, separate output head: 163,009,536 parameters" in everything
    assert "GPT-2 small, tied output head    : 124,412,160 parameters" in everything
    assert "plus GPT-2's query/key/value biases: 124,439,808" in everything
    assert "one GPT-2 small block: 7,085,568 parameters" in everything
    assert "matches torch.nn.LayerNorm: True" in everything
    assert "last output identical without positions: True" in everything
    assert "last output identical with positions   : False" in everything
    assert "same seed, same text: True" in everything

    # the KV cache: same tokens, each position embedded once, a measured speed-up with a progress bar
    kv = _outputs(by_id["kv-cache-demo"])
    assert "greedy, same tokens as generate : True" in kv
    assert "generate_cached  embedded    48 positions" in kv, kv  # 19-token prompt + 29 new tokens
    timing = _outputs(by_id["kv-cache-timing"])
    assert "timing" in timing and ("it/s" in timing or "s/it" in timing), "no progress bar"
    speedups = [float(line.split("speed-up")[1].strip().rstrip("x")) for line in timing.splitlines() if "speed-up" in line]
    assert len(speedups) == 4 and max(speedups) > 2, timing
