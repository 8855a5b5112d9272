"""Week 7 reference: a retriever for retrieval-augmented generation.

The trusted oracle of the hidden tests. It favours being obviously correct and total (defined on empty
documents, empty corpora, zero vectors, k larger than the corpus) over being fast, and computes in
float64 whatever the input dtype. Every ranking breaks ties by the lower index: a stable sort on the
negated score.

BM25 and the IDF floor. The course uses the smoothed IDF ``ln(1 + (N - df + 0.5) / (df + 0.5))``, which
is positive for every term, so it needs no floor. ``rank_bm25.BM25Okapi`` (the oracle of
``tests/test_reference_retrieval.py``) uses the unsmoothed ``ln((N - df + 0.5) / (df + 0.5))`` and
replaces negative values (terms in more than about half the documents) by ``epsilon * mean IDF``. Strategy
chosen: the reference reproduces that floor exactly with the documented option ``idf="okapi"`` (compared
with BM25Okapi on every input, floor included), and the course's ``idf="smooth"`` is compared with
BM25Okapi on inputs where the floor cannot act, through the identity
``smooth = ln(1 + exp(okapi_unfloored))`` (see the test module).
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter

import numpy as np

__all__ = [
    "tokenize", "chunk_text", "bm25_idf", "BM25Index", "bm25_scores", "cosine_scores", "cosine_top_k", "top_k_order",
    "mmr", "mmr_step_scores", "min_max", "hybrid_scores", "recall_at_k", "mrr", "HashingEmbedder",
    "Retriever", "build_prompt", "INSTRUCTIONS", "NO_SOURCES",
]

_WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """The course's BM25 tokenisation: lowercase, then every maximal run of word characters (``\\w+``)."""
    return _WORD.findall(text.lower())


# ------------------------------------------------------------------------------------------- chunking
def chunk_text(text: str, chunk_size: int, overlap: int) -> list[str]:
    """Split ``text`` into chunks of ``chunk_size`` whitespace tokens, consecutive chunks sharing ``overlap``.

    Chunk i covers words ``[i * step, i * step + chunk_size)`` with ``step = chunk_size - overlap``, joined
    by single spaces. The last chunk is the first one that reaches the last word (it may be shorter than
    ``chunk_size``), so no chunk is ever contained in the one before. No words: no chunks.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if overlap < 0 or overlap >= chunk_size:
        raise ValueError(f"overlap must satisfy 0 <= overlap < chunk_size, got overlap={overlap}, "
                         f"chunk_size={chunk_size}")
    words = text.split()
    step = chunk_size - overlap
    chunks, start = [], 0
    while start < len(words):
        chunks.append(" ".join(words[start:start + chunk_size]))
        if start + chunk_size >= len(words):
            break
        start += step
    return chunks


# ----------------------------------------------------------------------------------------------- BM25
def bm25_idf(n_docs: int, df: int) -> float:
    """The course's smoothed IDF: ``ln(1 + (N - df + 0.5) / (df + 0.5))``; always > 0."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


class BM25Index:
    """The collection statistics BM25 needs (term counts, lengths, document frequencies), computed once."""

    def __init__(self, docs_tokens, k1: float = 1.5, b: float = 0.75, idf: str = "smooth", epsilon: float = 0.25):
        if idf not in ("smooth", "okapi"):
            raise ValueError(f"idf must be 'smooth' or 'okapi', got {idf!r}")
        self.k1, self.b, self.idf_variant, self.epsilon = k1, b, idf, epsilon
        self.counts = [Counter(d) for d in docs_tokens]
        self.lengths = [sum(c.values()) for c in self.counts]
        self.n = len(self.counts)
        self.avgdl = sum(self.lengths) / self.n if self.n else 0.0
        self.df = Counter(t for c in self.counts for t in c)
        raw = {t: math.log(self.n - f + 0.5) - math.log(f + 0.5) for t, f in self.df.items()}
        self._okapi_floor = epsilon * (sum(raw.values()) / len(raw)) if raw else 0.0
        self._okapi = raw

    def idf(self, term: str) -> float:
        if self.idf_variant == "smooth":
            return bm25_idf(self.n, self.df.get(term, 0))
        if term not in self._okapi:
            return 0.0
        return self._okapi[term] if self._okapi[term] >= 0 else self._okapi_floor

    def scores(self, query_tokens) -> list[float]:
        scores = [0.0] * self.n
        for t in query_tokens:
            weight = self.idf(t)
            for i, c in enumerate(self.counts):
                tf = c.get(t, 0)
                if tf:
                    norm = self.k1 * (1.0 - self.b + self.b * self.lengths[i] / self.avgdl)
                    scores[i] += weight * tf * (self.k1 + 1.0) / (tf + norm)
        return scores


def bm25_scores(query_tokens, docs_tokens, k1: float = 1.5, b: float = 0.75, idf: str = "smooth",
                epsilon: float = 0.25) -> list[float]:
    """Okapi BM25 score of every document for the query, as a list of floats (one per document).

    ``score(D) = sum over query tokens t (every occurrence counts) of
    idf(t) * tf(t, D) * (k1 + 1) / (tf(t, D) + k1 * (1 - b + b * |D| / avgdl))``, where a token absent
    from D contributes exactly 0 (so empty documents score 0, and a corpus of empty documents too).

    ``idf="smooth"`` (the course's): ``bm25_idf``. ``idf="okapi"``: rank_bm25's BM25Okapi, i.e.
    ``ln((N - df + 0.5) / (df + 0.5))`` for every corpus term, negative values replaced by
    ``epsilon * (mean over corpus terms of the unfloored IDF)``; a query term absent from the corpus gets 0.
    """
    return BM25Index([list(d) for d in docs_tokens], k1, b, idf, epsilon).scores(list(query_tokens))


# ------------------------------------------------------------------------------------------ dense search
def _unit_rows(m: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1; zero rows stay zero (so their cosine with anything is 0)."""
    m = np.asarray(m, dtype=np.float64)
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)


def cosine_scores(query_vec, doc_matrix) -> np.ndarray:
    """Cosine similarity of the query with every row, float64; 0 where either vector is zero."""
    docs = np.asarray(doc_matrix, dtype=np.float64).reshape(-1, np.asarray(query_vec).shape[-1])
    return _unit_rows(docs) @ _unit_rows(np.asarray(query_vec)[None, :])[0]


def top_k_order(scores, k: int) -> list[int]:
    """Indices of the ``k`` largest scores, best first, ties broken by the lower index."""
    scores = [float(s) for s in scores]
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:max(k, 0)]


def cosine_top_k(query_vec, doc_matrix, k: int) -> tuple[list[int], list[float]]:
    """Exact search: (indices, cosine scores) of the ``min(k, n)`` most similar rows, best first."""
    scores = cosine_scores(query_vec, doc_matrix)
    order = top_k_order(scores, k)
    return order, [float(scores[i]) for i in order]


def mmr_step_scores(query_vec, doc_matrix, selected, lambda_: float = 0.5) -> np.ndarray:
    """The MMR score of every document given the already ``selected`` ones (-inf for those).

    With nothing selected the score is the cosine with the query (the first pick is the most relevant
    document for every lambda); afterwards ``lambda * cos(q, d) - (1 - lambda) * max_s cos(d, s)``.
    """
    docs = _unit_rows(doc_matrix)
    relevance = docs @ _unit_rows(np.asarray(query_vec)[None, :])[0]
    if not selected:
        out = relevance.copy()
    else:
        redundancy = (docs @ docs[list(selected)].T).max(axis=1)
        out = lambda_ * relevance - (1.0 - lambda_) * redundancy
    out[list(selected)] = -np.inf
    return out


def mmr(query_vec, doc_matrix, k: int, lambda_: float = 0.5) -> list[int]:
    """Maximal marginal relevance: ``min(k, n)`` distinct indices, picked greedily (ties: lower index)."""
    n = np.asarray(doc_matrix).shape[0]
    selected: list[int] = []
    while len(selected) < min(k, n):
        scores = mmr_step_scores(query_vec, doc_matrix, selected, lambda_)
        selected.append(top_k_order(scores, 1)[0])
    return selected


# ------------------------------------------------------------------------------------------------ hybrid
def min_max(values) -> list[float]:
    """``(x - min) / (max - min)``; a list whose values are all equal (or has one value) becomes all 0."""
    values = [float(v) for v in values]
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return [0.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


def hybrid_scores(bm25, dense, alpha: float) -> list[float]:
    """``alpha * min_max(bm25) + (1 - alpha) * min_max(dense)``, element by element."""
    if len(bm25) != len(dense):
        raise ValueError(f"bm25 has {len(bm25)} scores but dense has {len(dense)}")
    return [alpha * x + (1.0 - alpha) * y for x, y in zip(min_max(bm25), min_max(dense))]


# ---------------------------------------------------------------------------------------------- metrics
def recall_at_k(ranked_ids, relevant_ids, k: int) -> float:
    """Share of the relevant ids found among the first ``k`` ranked ids; 0.0 when nothing is relevant."""
    relevant = set(relevant_ids)
    if not relevant:
        return 0.0
    return len(relevant & set(list(ranked_ids)[:max(k, 0)])) / len(relevant)


def mrr(ranked_ids, relevant_ids) -> float:
    """Reciprocal rank of the first relevant id (1-based), 0.0 if none is ranked. Average it over queries."""
    relevant = set(relevant_ids)
    for rank, doc_id in enumerate(ranked_ids, start=1):
        if doc_id in relevant:
            return 1.0 / rank
    return 0.0


# -------------------------------------------------------------------------------------------- retriever
class HashingEmbedder:
    """A toy embedding: each token adds +-1 to one of ``dim`` coordinates chosen by CRC-32, then the
    vector is scaled to length 1 (zero if the text has no tokens). Lexical, not semantic: a stand-in
    that needs no model, and the same in every process (CRC-32 is not salted like ``hash``)."""

    def __init__(self, dim: int = 256):
        self.dim = dim

    def __call__(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for token in tokenize(text):
            h = zlib.crc32(token.encode("utf-8"))
            vec[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec


class Retriever:
    """Lexical (BM25 over ``tokenize``), dense (cosine with ``embeddings``) or hybrid search over ``docs``."""

    MODES = ("bm25", "dense", "hybrid")

    def __init__(self, docs, embeddings, embed_fn=None):
        self.docs = list(docs)
        self.embeddings = np.asarray(embeddings, dtype=np.float64)
        if self.embeddings.shape[0] != len(self.docs):
            raise ValueError(f"{len(self.docs)} documents but {self.embeddings.shape[0]} embeddings")
        self.embed_fn = embed_fn
        self.doc_tokens = [tokenize(d) for d in self.docs]
        self._bm25 = BM25Index(self.doc_tokens)

    def scores(self, query: str, mode: str = "bm25", query_vec=None, alpha: float = 0.5) -> list[float]:
        """The score of every document in ``mode`` (what ``search`` ranks)."""
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if mode in ("dense", "hybrid"):
            if query_vec is None:
                if self.embed_fn is None:
                    raise ValueError(f"mode {mode!r} needs query_vec or an embed_fn")
                query_vec = self.embed_fn(query)
            dense = [float(s) for s in cosine_scores(query_vec, self.embeddings)]
            if mode == "dense":
                return dense
        lexical = self._bm25.scores(tokenize(query))  # = bm25_scores(tokenize(query), self.doc_tokens)
        if mode == "bm25":
            return lexical
        return hybrid_scores(lexical, dense, alpha)

    def search(self, query: str, k: int = 5, mode: str = "bm25", query_vec=None, alpha: float = 0.5):
        """``min(k, n)`` pairs ``(doc_index, score)``, best first, ties broken by the lower index."""
        scores = self.scores(query, mode, query_vec, alpha)
        return [(i, scores[i]) for i in top_k_order(scores, k)]


# ---------------------------------------------------------------------------------------------- prompt
INSTRUCTIONS = ("Answer the question using only the numbered sources below. Cite the sources you use by "
                "their number in square brackets, like [1]. If the sources do not contain the answer, say "
                "that you do not know.")
NO_SOURCES = "(no sources found)"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def build_prompt(question: str, hits) -> str:
    """INSTRUCTIONS, a blank line, "Sources:", one line "[i] (doc <id>) <text>" per hit (i from 1, in
    order; runs of whitespace in the text collapsed to one space) or NO_SOURCES, a blank line,
    "Question: <question>" (whitespace collapsed too), and "Answer:". Lines joined by "\\n", no final newline."""
    lines = [INSTRUCTIONS, "", "Sources:"]
    hits = list(hits)
    if not hits:
        lines.append(NO_SOURCES)
    for number, (doc_id, text) in enumerate(hits, start=1):
        lines.append(f"[{number}] (doc {doc_id}) {_one_line(text)}")
    lines += ["", f"Question: {_one_line(question)}", "Answer:"]
    return "\n".join(lines)
