"""The week-6 notebook runs top to bottom in a real Jupyter kernel, every check cell passes, and the
demos show what the text says they show. Its data files are what their generator writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from tests.test_notebook_runs import _text, assert_checks_pass, run_notebook

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "assignments" / "w06_lora"


def test_data_files_are_what_the_generator_writes():
    proc = subprocess.run([sys.executable, str(FOLDER / "data" / "make_data.py"), "--check"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "up to date" in proc.stdout, proc.stdout + proc.stderr


def test_base_model_loads_into_the_reference_gpt():
    from reference.gpt import GPTModel

    checkpoint = torch.load(FOLDER / "data" / "base_model.pt", weights_only=True)
    model = GPTModel(checkpoint["config"])
    model.load_state_dict(checkpoint["model"])  # strict: exactly the week-3 parameter names
    assert len(checkpoint["chars"]) == checkpoint["config"]["vocab_size"]
    assert checkpoint["history"][-1][1] < 0.35  # pretrained, not random (a random model: about 4)


def test_lora_notebook_runs_and_all_checks_pass(monkeypatch):
    cells = run_notebook(FOLDER / "lora.ipynb", monkeypatch)
    assert_checks_pass(cells, ["count_trainable_parameters", "lora_linear", "apply_lora", "merge_lora"])
    by_id = {c.get("id"): c for c in cells}
    printed = {cid: "".join(_text(o) for o in c.outputs) for cid, c in by_id.items()}
    for cid in ("low-rank-demo", "loss-curve"):
        assert any("image/png" in o.get("data", {}) for o in by_id[cid].outputs), f"{cid}: no figure"
    assert "163,009,536" in printed["gpt2-sizes-demo"]  # GPT-2 small in the week-3 layout
    assert "starts as the base layer: True" in printed["lora-linear-demo"]
    assert "gradient of lora_A is zero:     True" in printed["lora-linear-demo"]
    assert "merged(x) equals adapter(x): True" in printed["merge-demo"]
    finetune = by_id["finetune"]
    assert any("LoRA finetuning" in _text(o) or "it/s" in _text(o) for o in finetune.outputs), "no progress bar"
    assert "same greedy predictions everywhere: True" in printed["merge-at-the-end-demo"]
    assert "LoRALinear modules left: 0" in printed["merge-at-the-end-demo"]
    assert "parameter names as in the base model: True" in printed["merge-at-the-end-demo"]
