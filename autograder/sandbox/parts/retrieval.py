"""Week 7's trusted stand-ins: the functions a student's ``Retriever`` is built from.

While the hidden suite grades ``Retriever``, the student's ``tokenize``, ``bm25_scores``, ``cosine_top_k``
and ``hybrid_scores`` are swapped for these, so a bug in one of them costs points only in its own exercise.
Written with NumPy, vectorised, independently of ``reference/retrieval.py``; ``tests/test_parts.py``
proves they agree with it.
"""

from __future__ import annotations

import math
import re

import numpy as np

SOLVES = ("w07_retrieval",)  # a snapshot bundle never carries this module (autograder/export/weeks.py)

_WORDS = re.compile(r"\w+")


def tokenize(text):
    return _WORDS.findall(text.lower())


def bm25_scores(query_tokens, docs_tokens, k1=1.5, b=0.75):
    docs = [list(d) for d in docs_tokens]
    if not docs:
        return []
    lengths = np.array([len(d) for d in docs], dtype=np.float64)
    avgdl = lengths.mean()
    scores = np.zeros(len(docs))
    for term in query_tokens:  # every occurrence of a query term counts
        tf = np.array([d.count(term) for d in docs], dtype=np.float64)
        df = int((tf > 0).sum())
        if df == 0:
            continue
        idf = math.log1p((len(docs) - df + 0.5) / (df + 0.5))
        denom = tf + k1 * (1 - b + b * lengths / (avgdl if avgdl else 1.0))
        scores += np.where(tf > 0, idf * tf * (k1 + 1) / np.where(tf > 0, denom, 1.0), 0.0)
    return scores.tolist()


def _cosines(query_vec, doc_matrix):
    q = np.asarray(query_vec, dtype=np.float64).ravel()
    m = np.asarray(doc_matrix, dtype=np.float64).reshape(-1, q.size)
    qn, mn = np.linalg.norm(q), np.linalg.norm(m, axis=1)
    out = np.zeros(m.shape[0])
    ok = (mn > 0) & (qn > 0)
    out[ok] = (m[ok] @ q) / (mn[ok] * qn)
    return out


def cosine_top_k(query_vec, doc_matrix, k):
    scores = _cosines(query_vec, doc_matrix)
    order = np.lexsort((np.arange(scores.size), -scores))[:max(int(k), 0)]  # by score, then lower index
    return [int(i) for i in order], [float(scores[i]) for i in order]


def _normalised(values):
    v = np.asarray(values, dtype=np.float64)
    span = v.max() - v.min() if v.size else 0.0
    return (v - v.min()) / span if span > 0 else np.zeros_like(v)


def hybrid_scores(bm25, dense, alpha):
    if len(bm25) != len(dense):
        raise ValueError("bm25 and dense must have the same length")
    if len(bm25) == 0:
        return []
    return (alpha * _normalised(bm25) + (1 - alpha) * _normalised(dense)).tolist()


PARTS = {"tokenize": tokenize, "bm25_scores": bm25_scores, "cosine_top_k": cosine_top_k,
         "hybrid_scores": hybrid_scores}
