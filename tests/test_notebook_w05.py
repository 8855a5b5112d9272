"""The week 5 instructor notebook runs top to bottom in a real Jupyter kernel, and every check cell passes.

It also shows what it promises: the classifier's loss and accuracy curves and its confusion matrices, the
instruction finetune's loss, and the DPO reward plot, each with a progress bar.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_notebook_runs import _text, assert_checks_pass, run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "assignments" / "w05_finetuning" / "finetuning.ipynb"
EXERCISES = ["prepare_for_classification", "classification_logits", "classification_accuracy", "format_instruction",
             "collate_instructions", "sequence_logprob", "dpo_loss"]


def _has_image(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def _has_progress_bar(cell) -> bool:
    return any(o.output_type == "stream" and o.name == "stderr" for o in cell.outputs) or any(
        "it/s" in _text(o) or "%|" in _text(o) or "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        for o in cell.outputs)


def test_finetuning_notebook_runs_and_all_checks_pass(monkeypatch):
    cells = run_notebook(NOTEBOOK, monkeypatch)
    assert_checks_pass(cells, EXERCISES)
    by_id = {c.get("id"): c for c in cells}
    for cid in ("classifier-training", "confusion-demo", "sft-training", "dpo-training"):
        assert _has_image(by_id[cid]), f"{cid} drew no plot"
    for cid in ("classifier-training", "sft-training", "dpo-training"):
        assert _has_progress_bar(by_id[cid]), f"{cid} shows no progress bar"
    text = "\n".join(_text(o) for o in by_id["classifier-training"].outputs)
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", text).group(1))
    assert accuracy >= 0.85, text
    text = "\n".join(_text(o) for o in by_id["dpo-training"].outputs)
    assert float(re.search(r"reward accuracy ([0-9.]+)", text).group(1)) >= 0.6, text
