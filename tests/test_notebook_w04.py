"""The week-4 instructor notebook runs top to bottom in a real Jupyter kernel, every check cell passes, and
the demos show what the text says: a loss near log V before training, a resumed run equal to the
uninterrupted one, a pretraining run with a progress bar that ends well below the unigram loss, and its
loss plot."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_notebook_runs import _text, assert_checks_pass, run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "assignments" / "w04_pretraining" / "pretraining.ipynb"
EXERCISES = ["gpt_dataset", "cross_entropy", "adamw", "lr_at_step", "clip_grad_norm", "train", "checkpoint"]


def _printed(cell) -> str:
    return "\n".join(_text(o) for o in cell.outputs)


def _has_image(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.outputs)


def test_pretraining_notebook_runs_and_all_checks_pass(monkeypatch):
    cells = run_notebook(NOTEBOOK, monkeypatch)
    assert_checks_pass(cells, EXERCISES)
    by_id = {c.get("id"): c for c in cells}

    loss = re.search(r"loss of the untrained model: ([\d.]+)\s+log\(V\) = ([\d.]+)", _printed(by_id["loss-demo"]))
    assert loss and abs(float(loss.group(1)) - float(loss.group(2))) < 0.3, _printed(by_id["loss-demo"])
    assert "PyTorch agrees: True" in _printed(by_id["loss-demo"])
    assert re.search(r"largest difference from torch.optim.AdamW after 20 steps: \d", _printed(by_id["adamw-demo"]))
    assert _has_image(by_id["adamw-demo"]) and _has_image(by_id["schedule-demo"]) and _has_image(by_id["overfit-demo"])

    resume = _printed(by_id["resume-demo"])
    assert "largest weight difference from the uninterrupted run: 0.0" in resume, resume
    assert re.search(r"fresh optimizer: [1-9]", resume), resume  # without the optimizer state it differs

    run = by_id["pretrain-run"]
    printed = _printed(run)
    final = re.search(r"final validation loss ([\d.]+)", printed)
    assert final and float(final.group(1)) < 2.0, printed  # the best unigram model: 2.99
    assert _has_image(run), "no loss plot"
    assert any(o.output_type == "stream" and o.name == "stderr" for o in run.outputs) or "it/s" in printed, \
        "no progress bar"
    samples = _printed(by_id["pretrain-samples"])
    assert samples.count("Once there was") == 3 and len(samples) > 900
