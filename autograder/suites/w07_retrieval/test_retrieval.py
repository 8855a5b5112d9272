"""Hidden tests, week 7 (a retriever for retrieval-augmented generation). 41 points.

Inputs are generated here (trusted) from small hypothesis draws: token lists over a seven-word vocabulary
with unseen query terms and empty documents, vectors from a seed (with zero and duplicate rows), k up to
past the end of the corpus. The reference (``reference/retrieval.py``) computes in float64.

Rankings are compared with a tolerance: a result list is accepted when the document at position p has,
by the reference's scores, the p-th best score within ``tol``; so two documents whose scores are within
``tol`` may come in either order, and a float32 implementation passes. The tie rule ("ties go to the lower
index") is graded exactly on inputs whose scores are exact in any precision: axis-aligned vectors with
dyadic coordinates, where every cosine and MMR score is a multiple of 1/16.

Each exercise's inputs are built with the reference, never with the student's other exercises. The
``Retriever`` calls the student's own functions (its notebook section says so); while it is graded, those
names (``RETRIEVER_PARTS``) refer to the kit's correct versions (``autograder/sandbox/parts/retrieval.py``),
so a bug in ``bm25_scores`` costs points only there. Nothing here needs faiss or an embedding model: the dense part of the
shipped question set uses the shipped vectors.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from autograder.compare import assert_close, f32_tol, graded
from autograder.proxy import Remote, StudentError
from autograder.sandbox.codec import Handle
from reference import retrieval as ref

points = pytest.mark.points
DATA = Path(__file__).resolve().parents[3] / "assignments" / "w07_retrieval" / "data"
RETRIEVER_PARTS = ("tokenize", "bm25_scores", "cosine_top_k", "hybrid_scores")  # swapped in for Retriever tests

# ------------------------------------------------------------------------------------------------ inputs
VOCAB = ["rag", "bm25", "token", "vector", "the", "model", "query"]
UNSEEN = ["zebra", "unseen"]
seeds = st.integers(0, 2**31 - 1)
doc_tokens = st.lists(st.sampled_from(VOCAB[:5]), max_size=8)  # "model" and "query" are rarer: query only
corpora = st.lists(doc_tokens, min_size=1, max_size=8)
queries = st.lists(st.sampled_from(VOCAB + UNSEEN), max_size=5)
# Retriever texts: capitals and punctuation, so the tokenisation helper matters
SURFACE = {"rag": "RAG", "bm25": "BM25,", "token": "token.", "vector": "Vectors", "the": "the", "model": "model!",
           "query": "(query)", "zebra": "zebra", "unseen": "unseen?"}


def text_of(tokens: list[str]) -> str:
    return " ".join(SURFACE[t] for t in tokens)


def vectors(n: int, d: int, seed: int, zero_rows: bool = False, duplicates: bool = False) -> np.ndarray:
    """(n, d) float32 with rows of varied length (never normalised), optionally with zero/duplicate rows."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, d)) * rng.choice([0.1, 1.0, 7.0], size=(n, 1))
    if zero_rows:
        m[rng.random(n) < 0.3] = 0.0
    if duplicates and n > 1:
        m[rng.integers(0, n, size=max(1, n // 3))] = m[rng.integers(0, n)]
    return m.astype(np.float32)


def axis_aligned(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A query and (n, 4) documents whose cosines (and MMR scores for lambda in quarters) are multiples
    of 1/16 in any precision: rows s * e_j with s in {+-0.5, +-1, +-2} or zero; the query one-hot or
    with four +-1 entries, times a power of two. Many exact ties."""
    rng = np.random.default_rng(seed)
    docs = np.zeros((n, 4), dtype=np.float32)
    for i in range(n):
        if rng.random() < 0.8:
            docs[i, rng.integers(0, 4)] = rng.choice([0.5, 1.0, 2.0, -0.5, -1.0, -2.0])
    if rng.random() < 0.5:
        query = np.zeros(4, dtype=np.float32)
        query[rng.integers(0, 4)] = 1.0
    else:
        query = rng.choice([-1.0, 1.0], size=4).astype(np.float32)
    return query * np.float32(rng.choice([0.5, 1.0, 4.0])), docs


def cos_tol(d: int) -> float:
    """float32 cosine: rounding grows with the dimension (d products summed, two norms)."""
    return f32_tol(d + 2)


def bm25_tol(query, docs, k1=1.5) -> float:
    """Bound on a BM25 score: every query token adds at most idf * (k1 + 1); float32 rounding of that."""
    top = sum(ref.bm25_idf(len(docs), 0) for _ in query) * (k1 + 1)
    return f32_tol(4 * top)


# ------------------------------------------------------------------------------------------ result forms
def kind(value) -> str:
    """What a returned value is, in words: objects without a data form arrive as worker handles."""
    if isinstance(value, (Remote, Handle)):
        return "an object that is not plain data (a subclass, generator or custom object)"
    return type(value).__name__


def _number(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise AssertionError(f"{what} should be a number, got {kind(x)}")
    return float(x)


def float_list(value, what: str, length: int | None = None) -> list[float]:
    """A list/tuple of numbers or a 1-D array/tensor, as Python floats."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        if value.ndim != 1:
            raise AssertionError(f"{what} should be 1-D, got shape {tuple(value.shape)}")
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise AssertionError(f"{what} should be a list of floats, got {kind(value)}")
    out = [_number(v, f"{what}[{i}]") for i, v in enumerate(value)]
    if length is not None and len(out) != length:
        raise AssertionError(f"{what} has {len(out)} values, expected {length} (one per document)")
    if any(math.isnan(v) for v in out):
        raise AssertionError(f"{what} contains NaN")
    return out


def index_list(value, what: str) -> list[int]:
    if isinstance(value, (np.ndarray, torch.Tensor)):
        if value.ndim != 1 or value.dtype in (np.float32, np.float64, torch.float32, torch.float64):
            raise AssertionError(f"{what} should be a 1-D list of int indices, got {value.dtype} of shape "
                                 f"{tuple(value.shape)}")
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise AssertionError(f"{what} should be a list of int indices, got {kind(value)}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int):
            raise AssertionError(f"{what}[{i}] should be an int index, got {kind(v)}")
    return list(value)


def close(got: list[float], want, tol: float, what: str) -> None:
    assert_close(torch.tensor(got, dtype=torch.float64), torch.tensor(list(want), dtype=torch.float64),
                 atol=tol, what=what)


def check_ranking(indices: list[int], ref_scores, k: int, tol: float, what: str) -> None:
    """``indices`` lists min(k, n) distinct documents, best first by the reference's scores, where scores
    within ``tol`` of each other may come in either order."""
    scores = [float(s) for s in ref_scores]
    n, m = len(scores), min(max(k, 0), len(scores))
    if len(indices) != m:
        raise AssertionError(f"{what} returned {len(indices)} results for k={k} and {n} documents; "
                             f"expected min(k, n) = {m}")
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise AssertionError(f"{what} returned index {bad[0]}, outside 0..{n - 1}")
    if len(set(indices)) != len(indices):
        raise AssertionError(f"{what} returned the same document twice: {indices}")
    best = sorted(scores, reverse=True)
    for p, i in enumerate(indices):
        off = abs(scores[i] - best[p])
        if off > tol:
            raise AssertionError(f"{what}: the result at position {p} (document {i}) is not the {p + 1}. best; its "
                                 f"score is {off:.3g} away from the {p + 1}. best score (tolerance {tol:.2g}). "
                                 "Sort by score, highest first, over all documents")


def raises_value_error(call, what: str) -> None:
    try:
        call()
    except StudentError as exc:
        if exc.type_name not in ("ValueError", "AssertionError"):
            raise AssertionError(f"{what} raised {exc.type_name}; expected ValueError") from None
        return
    raise AssertionError(f"{what} was accepted; it must raise ValueError")


# ------------------------------------------------------------------------------------------- chunk_text
WORDS = ["alpha", "beta", "gamma", "delta", "x", "é", "42", "token."]
SPACES = st.sampled_from([" ", "  ", "\n", "\t", " \n "])


@st.composite
def spaced_texts(draw):
    words = draw(st.lists(st.sampled_from(WORDS), max_size=25))
    seps = [draw(SPACES) for _ in range(len(words) + 1)]
    lead, trail = draw(st.booleans()), draw(st.booleans())
    body = "".join(w + s for w, s in zip(words, seps[1:]))
    return (seps[0] if lead else "") + (body if trail else body.rstrip())


def check_chunks(got, want, what: str) -> None:
    if not isinstance(got, list) or not all(isinstance(c, str) for c in got):
        raise AssertionError(f"{what} should return a list of str, got {kind(got)}")
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        raise AssertionError(f"{what} gave {len(got)} chunks, expected {len(want)}; the first wrong or missing "
                             f"chunk is chunk {first}" + (f" (yours: {got[first]!r:.60})" if first < len(got) else ""))


sizes = st.integers(1, 8).flatmap(lambda size: st.tuples(st.just(size), st.integers(0, size - 1)))


@points(3)
@pytest.mark.exercise("chunk_text")
@graded(max_examples=30)
@given(text=spaced_texts(), size_overlap=sizes)
def test_chunk_matches_reference(student, text, size_overlap):
    """chunks equal the reference's: windows of chunk_size whitespace tokens, step chunk_size - overlap,
    the last chunk the first to reach the last word (exact)"""
    size, overlap = size_overlap
    check_chunks(student.chunk_text(text, size, overlap), ref.chunk_text(text, size, overlap),
                 f"chunk_text(text, {size}, {overlap})")


@points(1)
@pytest.mark.exercise("chunk_text")
def test_chunk_edge_cases(student):
    """empty and whitespace-only text give [], short text one chunk, overlap 0 and chunk_size 1 (exact)"""
    cases = [("", 3, 1), ("   \n\t ", 2, 0), ("one two", 5, 2), ("a b c d", 4, 3), ("a b c d e f", 2, 0),
             ("a b c", 1, 0), ("w1 w2 w3 w4 w5 w6 w7", 3, 1), ("a  b\n\nc", 2, 1)]
    for text, size, overlap in cases:
        check_chunks(student.chunk_text(text, size, overlap), ref.chunk_text(text, size, overlap),
                     f"chunk_text({text!r}, {size}, {overlap})")


@points(1)
@pytest.mark.exercise("chunk_text")
def test_chunk_rejects_bad_overlap(student):
    """overlap >= chunk_size (and a negative overlap) raises ValueError; overlap = chunk_size - 1 does not"""
    student.chunk_text("a b c d e", 3, 2)  # valid: must not raise
    student.chunk_text("a b c d e", 1, 0)
    for size, overlap in ((3, 3), (2, 5), (4, -1)):
        raises_value_error(lambda: student.chunk_text("a b c d e", size, overlap),
                           f"chunk_text(text, chunk_size={size}, overlap={overlap})")


# ------------------------------------------------------------------------------------------ bm25_scores
@points(3)
@pytest.mark.exercise("bm25_scores")
@graded(max_examples=30)
@given(query=queries, docs=corpora)
def test_bm25_matches_reference(student, query, docs):
    """BM25 scores with the default k1=1.5, b=0.75 and the smoothed IDF equal the reference; empty documents,
    repeated and unseen query terms included (tolerance f32_tol(4 * largest possible score))"""
    got = float_list(student.bm25_scores(query, docs), "bm25_scores(query, docs)", len(docs))
    close(got, ref.bm25_scores(query, docs), bm25_tol(query, docs), "bm25_scores(query, docs)")


@points(1)
@pytest.mark.exercise("bm25_scores")
@graded(max_examples=25)
@given(query=queries, docs=corpora, k1=st.sampled_from([0.5, 1.2, 2.0]), b=st.sampled_from([0.0, 0.5, 1.0]))
def test_bm25_parameters(student, query, docs, k1, b):
    """k1 and b passed as keywords are used (b = 0: no length normalisation, b = 1: full)
    (tolerance f32_tol(4 * largest possible score))"""
    got = float_list(student.bm25_scores(query, docs, k1=k1, b=b), f"bm25_scores(k1={k1}, b={b})", len(docs))
    close(got, ref.bm25_scores(query, docs, k1=k1, b=b), bm25_tol(query, docs, k1), f"bm25_scores(k1={k1}, b={b})")


@points(1)
@pytest.mark.exercise("bm25_scores")
def test_bm25_edge_cases(student):
    """no documents gives []; an empty query, or only empty documents, gives zeros (exact up to rounding)"""
    got = student.bm25_scores(["rag"], [])
    if float_list(got, "bm25_scores(['rag'], [])") != []:
        raise AssertionError("bm25_scores(query, []) should be [] (no documents, no scores)")
    for query, docs in (([], [["rag"], ["bm25", "rag"]]), (["rag"], [[], []]), (["zebra"], [["rag"], []])):
        got = float_list(student.bm25_scores(query, docs), f"bm25_scores({query}, {docs})", len(docs))
        close(got, [0.0] * len(docs), 1e-9, f"bm25_scores({query}, {docs})")


@points(1)
@pytest.mark.exercise("bm25_scores")
def test_bm25_common_term_counts(student):
    """a term in every document still scores above 0 (the +1 inside the IDF's logarithm), and a document
    without it scores 0 (tolerance f32_tol)"""
    docs = [["the", "rag"], ["the", "model", "the"], ["the"], ["bm25"]]
    want = ref.bm25_scores(["the"], docs)
    got = float_list(student.bm25_scores(["the"], docs), "bm25_scores(['the'], docs)", len(docs))
    if not all(g > 0 for g in got[:3]):
        raise AssertionError("a term found in 3 of 4 documents must still get a positive score: the course's IDF "
                             "is ln(1 + (N - df + 0.5) / (df + 0.5)), which is never negative")
    close(got, want, f32_tol(16), "bm25_scores(['the'], docs)")


# ----------------------------------------------------------------------------------------- cosine_top_k
def check_top_k(student, query, docs, k, what, tol):
    out = student.cosine_top_k(query, docs, k)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise AssertionError(f"{what} should return a pair (indices, scores)")
    indices = index_list(out[0], f"{what} indices")
    scores = float_list(out[1], f"{what} scores", len(indices))
    want = ref.cosine_scores(query, docs)
    check_ranking(indices, want, k, tol, what)
    close(scores, [want[i] for i in indices], tol, f"{what} scores")
    return indices


@points(3)
@pytest.mark.exercise("cosine_top_k")
@graded(max_examples=30)
@given(n=st.integers(1, 12), d=st.integers(1, 8), k=st.integers(0, 15), seed=seeds)
def test_cosine_top_k_matches_reference(student, n, d, k, seed):
    """the min(k, n) rows most similar by cosine, best first, with their cosines; vectors of any length
    (tolerance f32_tol(d + 2); scores that close may come in either order)"""
    docs = vectors(n, d, seed)
    query = vectors(1, d, seed + 1)[0]
    check_top_k(student, query, docs, k, f"cosine_top_k(query, docs, k={k})", cos_tol(d))


@points(1)
@pytest.mark.exercise("cosine_top_k")
@graded(max_examples=25)
@given(n=st.integers(1, 10), d=st.integers(1, 6), k=st.integers(1, 12), seed=seeds, zero_query=st.booleans())
def test_cosine_top_k_zero_and_duplicate_vectors(student, n, d, k, seed, zero_query):
    """zero vectors have cosine 0 with everything (no NaN), duplicate rows get equal scores (tolerance
    f32_tol(d + 2))"""
    docs = vectors(n, d, seed, zero_rows=True, duplicates=True)
    query = np.zeros(d, dtype=np.float32) if zero_query else vectors(1, d, seed + 1)[0]
    check_top_k(student, query, docs, k, f"cosine_top_k(query, docs, k={k})", cos_tol(d))


@points(1)
@pytest.mark.exercise("cosine_top_k")
@graded(max_examples=25)
@given(n=st.integers(2, 10), k=st.integers(1, 10), seed=seeds)
def test_cosine_top_k_ties_go_to_the_lower_index(student, n, k, seed):
    """equal cosines are ordered by lower index first, and a tie at the cut-off keeps the lower indices
    (exact: the cosines here are multiples of 1/2 in any precision)"""
    query, docs = axis_aligned(n, seed)
    out = student.cosine_top_k(query, docs, k)
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise AssertionError("cosine_top_k should return a pair (indices, scores)")
    got = index_list(out[0], "cosine_top_k indices")
    want, _ = ref.cosine_top_k(query, docs, k)
    if got != want:
        check_ranking(got, ref.cosine_scores(query, docs), k, 1e-9, "cosine_top_k(query, docs, k)")
        raise AssertionError(f"cosine_top_k: documents with exactly equal cosines are in the wrong order ({got}); "
                             "ties go to the lower index")


# -------------------------------------------------------------------------------------------------- mmr
LAMBDAS = st.sampled_from([0.0, 0.25, 0.5, 0.7, 1.0])


def check_mmr(got, query, docs, k, lambda_, tol, what):
    """Replay the greedy choice with the student's own picks: each must be new and, by the reference's MMR
    score given the documents already picked, within ``tol`` of the best."""
    got = index_list(got, what)
    n = docs.shape[0]
    if len(got) != min(k, n):
        raise AssertionError(f"{what} returned {len(got)} indices for k={k} and {n} documents; expected {min(k, n)}")
    for step, pick in enumerate(got):
        if not 0 <= pick < n:
            raise AssertionError(f"{what} returned index {pick}, outside 0..{n - 1}")
        if pick in got[:step]:
            raise AssertionError(f"{what} picked document {pick} twice (steps {got.index(pick)} and {step}); a picked "
                                 "document must leave the candidates")
        scores = ref.mmr_step_scores(query, docs, got[:step], lambda_)
        off = float(scores.max() - scores[pick])
        if off > tol:
            raise AssertionError(f"{what}: pick {step} (document {pick}) is not the best by MMR given the earlier picks "
                                 f"{got[:step]}: its score is {off:.3g} below the best (tolerance {tol:.2g})")


@points(3)
@pytest.mark.exercise("mmr")
@graded(max_examples=30)
@given(n=st.integers(1, 10), d=st.integers(1, 6), k=st.integers(0, 12), lambda_=LAMBDAS, seed=seeds)
def test_mmr_matches_reference(student, n, d, k, lambda_, seed):
    """every greedy pick maximises lambda * cos(q, d) - (1 - lambda) * max cos(d, picked), the first pick being
    the most similar to the query (tolerance 2 * f32_tol(d + 2) per step)"""
    docs = vectors(n, d, seed)
    query = vectors(1, d, seed + 1)[0]
    what = f"mmr(query, docs, k={k}, lambda_={lambda_})"
    check_mmr(student.mmr(query, docs, k, lambda_=lambda_), query, docs, k, lambda_, 2 * cos_tol(d), what)


@points(1)
@pytest.mark.exercise("mmr")
@graded(max_examples=25)
@given(n=st.integers(1, 9), d=st.integers(1, 5), k=st.integers(1, 12), lambda_=LAMBDAS, seed=seeds)
def test_mmr_duplicates_and_zero_vectors(student, n, d, k, lambda_, seed):
    """with duplicate and zero rows, and k past the end, picks stay distinct and follow the MMR rule
    (tolerance 2 * f32_tol(d + 2) per step)"""
    docs = vectors(n, d, seed, zero_rows=True, duplicates=True)
    query = vectors(1, d, seed + 1)[0]
    what = f"mmr(query, docs, k={k}, lambda_={lambda_})"
    check_mmr(student.mmr(query, docs, k, lambda_=lambda_), query, docs, k, lambda_, 2 * cos_tol(d), what)


@points(1)
@pytest.mark.exercise("mmr")
@graded(max_examples=25)
@given(n=st.integers(2, 9), k=st.integers(1, 9), lambda_=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), seed=seeds)
def test_mmr_ties_go_to_the_lower_index(student, n, k, lambda_, seed):
    """when several documents tie for the best MMR score, the lowest index is picked (exact: every score
    here is a multiple of 1/16 in any precision)"""
    query, docs = axis_aligned(n, seed)
    got = student.mmr(query, docs, k, lambda_=lambda_)
    what = f"mmr(query, docs, k={k}, lambda_={lambda_})"
    check_mmr(got, query, docs, k, lambda_, 1e-9, what)
    if index_list(got, what) != ref.mmr(query, docs, k, lambda_):
        raise AssertionError(f"{what}: among documents with exactly equal MMR scores, pick the lowest index")


# ---------------------------------------------------------------------------------------- hybrid_scores
grid = st.integers(-40, 40).map(lambda i: i / 4)  # exact in binary: the normalisation is well conditioned
unit_grid = st.integers(-8, 8).map(lambda i: i / 8)


score_lists = st.integers(1, 10).flatmap(lambda n: st.tuples(st.lists(grid.map(abs), min_size=n, max_size=n),
                                                             st.lists(unit_grid, min_size=n, max_size=n)))


@points(3)
@pytest.mark.exercise("hybrid_scores")
@graded(max_examples=30)
@given(lists=score_lists, alpha=st.sampled_from([0.0, 0.25, 0.5, 0.8, 1.0]))
def test_hybrid_matches_reference(student, lists, alpha):
    """alpha * minmax(bm25) + (1 - alpha) * minmax(dense) equals the reference (tolerance f32_tol(4))"""
    bm25, dense = lists
    got = float_list(student.hybrid_scores(bm25, dense, alpha), f"hybrid_scores(bm25, dense, {alpha})", len(bm25))
    close(got, ref.hybrid_scores(bm25, dense, alpha), f32_tol(4), f"hybrid_scores(bm25, dense, alpha={alpha})")


@points(1)
@pytest.mark.exercise("hybrid_scores")
def test_hybrid_constant_lists(student):
    """a list whose values are all equal (a single value included) normalises to zeros; empty lists give []
    (tolerance f32_tol(4))"""
    cases = [([0.0, 0.0, 0.0], [0.5, -0.5, 0.25], 0.5), ([2.0, 1.0], [0.3, 0.3], 0.25), ([7.5], [0.9], 0.5),
             ([1.0, 1.0], [0.2, 0.2], 0.6), ([], [], 0.5)]
    for bm25, dense, alpha in cases:
        what = f"hybrid_scores({bm25}, {dense}, {alpha})"
        got = float_list(student.hybrid_scores(bm25, dense, alpha), what, len(bm25))
        close(got, ref.hybrid_scores(bm25, dense, alpha), f32_tol(4), what)


# ---------------------------------------------------------------------------------------------- metrics
@st.composite
def ranking_and_relevant(draw):
    ranked = draw(st.permutations(list(range(15))).map(lambda p: p[:draw(st.integers(0, 15))]))
    relevant = draw(st.lists(st.integers(0, 19), max_size=5, unique=True))
    return list(ranked), relevant


@points(2)
@pytest.mark.exercise("recall_at_k")
@graded(max_examples=30)
@given(case=ranking_and_relevant(), k=st.integers(0, 18))
def test_recall_matches_reference(student, case, k):
    """share of the relevant ids among the first k ranked ids; 0.0 with no relevant ids; k past the end of
    the ranking (tolerance 1e-9)"""
    ranked, relevant = case
    got = _number(student.recall_at_k(ranked, relevant, k), f"recall_at_k(ranked, relevant, {k})")
    close([got], [ref.recall_at_k(ranked, relevant, k)], 1e-9, f"recall_at_k(ranked, relevant, k={k})")


@points(2)
@pytest.mark.exercise("mrr")
@graded(max_examples=30)
@given(case=ranking_and_relevant())
def test_mrr_matches_reference(student, case):
    """1 / (1-based rank of the first relevant id), 0.0 when none is ranked (tolerance 1e-9)"""
    ranked, relevant = case
    got = _number(student.mrr(ranked, relevant), "mrr(ranked, relevant)")
    close([got], [ref.mrr(ranked, relevant)], 1e-9, "mrr(ranked, relevant)")


# -------------------------------------------------------------------------------------------- Retriever
def check_hits(hits, scores, k, tol, what) -> None:
    """``hits``: min(k, n) pairs (index, score), a valid ranking of ``scores`` (the reference's)."""
    if not isinstance(hits, (list, tuple)):
        raise AssertionError(f"{what} should return a list of (doc_index, score) pairs, got {type(hits).__name__}")
    for h in hits:
        if not (isinstance(h, (tuple, list)) and len(h) == 2):
            raise AssertionError(f"{what} should return (doc_index, score) pairs, got an item {h!r:.60}")
    indices = index_list([h[0] for h in hits], f"{what} indices")
    got = float_list([h[1] for h in hits], f"{what} scores")
    check_ranking(indices, scores, k, tol, what)
    close(got, [scores[i] for i in indices], tol, f"{what} scores")


def hybrid_tol(query_tokens, doc_tokens, lexical, dense, d) -> float:
    """float32 rounding of each score list, magnified by its min-max normalisation."""
    lex_range = max(lexical) - min(lexical)
    dense_range = max(dense) - min(dense)
    lex = bm25_tol(query_tokens, doc_tokens) / lex_range if lex_range else 0.0
    return lex + cos_tol(d) / dense_range + f32_tol(4)


@points(3)
@pytest.mark.exercise("retriever")
@graded(max_examples=25)
@given(docs=corpora, query=queries, d=st.integers(2, 6), seed=seeds, k=st.integers(0, 10),
       mode=st.sampled_from(["bm25", "dense", "hybrid"]), alpha=st.sampled_from([0.3, 0.5, 1.0]))
def test_retriever_matches_reference(student, docs, query, d, seed, k, mode, alpha):
    """search(query, k, mode, query_vec, alpha) ranks like the reference in every mode: BM25 over tokenize(),
    cosine with the embeddings, or hybrid_scores of the two (tolerance per mode: float32 rounding of the
    scores, magnified by the min-max normalisation in hybrid mode)"""
    texts = [text_of(t) for t in docs]
    qtext = text_of(query)
    emb = vectors(len(docs), d, seed, zero_rows=True)
    qvec = vectors(1, d, seed + 1)[0]
    reference = ref.Retriever(texts, emb)
    scores = reference.scores(qtext, mode, query_vec=qvec, alpha=alpha)
    lexical = reference.scores(qtext, "bm25")
    dense = reference.scores(qtext, "dense", query_vec=qvec)
    qtok, dtok = ref.tokenize(qtext), [ref.tokenize(t) for t in texts]
    if mode == "hybrid":  # min-max is ill-conditioned on a nearly constant list: keep clear ranges only
        lex_range, dense_range = max(lexical) - min(lexical), max(dense) - min(dense)
        assume(dense_range >= 0.05 and (max(map(abs, lexical)) == 0 or lex_range >= 0.05))
    tol = {"bm25": bm25_tol(qtok, dtok), "dense": cos_tol(d)}.get(mode) or hybrid_tol(qtok, dtok, lexical, dense, d)
    retriever = student.Retriever.using(*RETRIEVER_PARTS)(texts, emb)
    hits = retriever.method("search").using(*RETRIEVER_PARTS)(qtext, k, mode=mode, query_vec=qvec, alpha=alpha)
    check_hits(hits, scores, k, tol, f"search(query, k={k}, mode={mode!r}, alpha={alpha})")


@points(1)
@pytest.mark.exercise("retriever")
@graded(max_examples=10)
@given(docs=corpora, query=queries, mode=st.sampled_from(["dense", "hybrid"]))
def test_retriever_calls_embed_fn(student, docs, query, mode):
    """without query_vec, dense and hybrid search embed the query with embed_fn (here the notebook's
    HashingEmbedder(16), built in the student's process: functions cannot be sent there) (tolerance as in
    the test above)"""
    texts = [text_of(t) for t in docs]
    qtext = text_of(query)
    embedder = ref.HashingEmbedder(16)
    emb = np.stack([embedder(t) for t in texts])
    reference = ref.Retriever(texts, emb, embed_fn=embedder)
    lexical, dense = reference.scores(qtext, "bm25"), reference.scores(qtext, "dense")
    if mode == "hybrid":
        assume(max(dense) - min(dense) >= 0.05 and (max(map(abs, lexical)) == 0 or max(lexical) - min(lexical) >= 0.05))
    qtok, dtok = ref.tokenize(qtext), [ref.tokenize(t) for t in texts]
    tol = cos_tol(16) if mode == "dense" else hybrid_tol(qtok, dtok, lexical, dense, 16)
    theirs = student.Retriever.using(*RETRIEVER_PARTS)(texts, emb, embed_fn=student.HashingEmbedder(16))  # an object in the worker
    hits = theirs.method("search").using(*RETRIEVER_PARTS)(qtext, 3, mode=mode)
    check_hits(hits, reference.scores(qtext, mode), 3, tol, f"search(query, 3, mode={mode!r}) with embed_fn")


@points(1)
@pytest.mark.exercise("retriever")
def test_retriever_errors(student):
    """an unknown mode, or a dense/hybrid search with neither query_vec nor embed_fn, raises ValueError;
    BM25 search needs no vector"""
    texts = ["RAG retrieves documents", "BM25 counts terms", "vectors compare meaning"]
    retriever = student.Retriever.using(*RETRIEVER_PARTS)(texts, vectors(3, 4, 0))
    search = retriever.method("search").using(*RETRIEVER_PARTS)
    hits = search("bm25 terms", 2, mode="bm25")
    check_hits(hits, ref.Retriever(texts, vectors(3, 4, 0)).scores("bm25 terms"), 2, f32_tol(16),
               "search('bm25 terms', 2, mode='bm25') without a vector")
    for mode in ("dense", "hybrid"):
        raises_value_error(lambda: search("meaning", 2, mode=mode), f"search(query, 2, mode={mode!r}) with no "
                           "query_vec and no embed_fn")
    raises_value_error(lambda: search("meaning", 2, mode="sparse", query_vec=vectors(1, 4, 1)[0]),
                       "search(query, 2, mode='sparse')")


@points(1)
@pytest.mark.exercise("retriever")
@graded(max_examples=10)
@given(docs=corpora, k=st.integers(1, 9), d=st.integers(2, 5), seed=seeds, mode=st.sampled_from(["bm25", "dense"]))
def test_retriever_ties_go_to_the_lower_index(student, docs, k, d, seed, mode):
    """when every score is exactly 0 (no query term in any document, or a zero query vector), search
    returns the first min(k, n) documents in index order (exact)"""
    texts = [text_of(t) for t in docs]
    search = student.Retriever.using(*RETRIEVER_PARTS)(texts, vectors(len(docs), d, seed)).method("search").using(*RETRIEVER_PARTS)
    hits = search("zebra unseen", k, mode=mode, query_vec=np.zeros(d, dtype=np.float32))
    what = f"search(query, {k}, mode={mode!r}) where every score is 0"
    check_hits(hits, [0.0] * len(docs), k, 1e-9, what)
    if [h[0] for h in hits] != list(range(min(k, len(docs)))):
        raise AssertionError(f"{what}: equal scores must come in index order, lowest first (got {[h[0] for h in hits]})")


@functools.lru_cache(maxsize=None)
def shipped():
    """The shipped corpus and question set, with the reference's mean recall@5 in each mode."""
    docs = [json.loads(line) for line in (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
    questions = [json.loads(line) for line in (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()
                 if line]
    texts = [f"{d['title']}. {d['text']}" for d in docs]
    doc_vectors = np.load(DATA / "doc_vectors.npy").astype(np.float32)
    question_vectors = np.load(DATA / "question_vectors.npy").astype(np.float32)
    reference = ref.Retriever(texts, doc_vectors)
    recall = {}
    for mode in ("bm25", "dense", "hybrid"):
        hits = [reference.search(q["question"], 5, mode, query_vec=v) for q, v in zip(questions, question_vectors)]
        recall[mode] = float(np.mean([ref.recall_at_k([i for i, _ in h], q["relevant"], 5)
                                      for h, q in zip(hits, questions)]))
    return texts, doc_vectors, questions, question_vectors, recall


def shipped_recall(student, mode: str) -> None:
    texts, doc_vectors, questions, question_vectors, recall = shipped()
    search = student.Retriever.using(*RETRIEVER_PARTS)(texts, doc_vectors).method("search").using(*RETRIEVER_PARTS)
    found = []
    for q, v in zip(questions, question_vectors):
        hits = search(q["question"], 5, mode=mode, query_vec=v)
        if not isinstance(hits, (list, tuple)) or not all(isinstance(h, (list, tuple)) and len(h) == 2 for h in hits):
            raise AssertionError(f"search(question, 5, mode={mode!r}) should return a list of (doc_index, score) pairs")
        found.append(ref.recall_at_k(index_list([h[0] for h in hits], "doc indices"), q["relevant"], 5))
    mine = float(np.mean(found))
    if mine < recall[mode] - 0.01:
        raise AssertionError(f"mean recall@5 in mode {mode!r} on the shipped {len(questions)} questions is {mine:.3f}; "
                             f"the reference reaches {recall[mode]:.3f} (you may be up to 0.01 below it)")


@points(1)
@pytest.mark.exercise("retriever")
def test_shipped_questions_recall_bm25(student):
    """on the shipped corpus and questions, BM25 search reaches the reference's mean recall@5 (within 0.01)"""
    shipped_recall(student, "bm25")


@points(1)
@pytest.mark.exercise("retriever")
def test_shipped_questions_recall_dense(student):
    """on the shipped corpus and questions, dense search with the shipped vectors reaches the reference's
    mean recall@5 (within 0.01)"""
    shipped_recall(student, "dense")


@points(1)
@pytest.mark.exercise("retriever")
def test_shipped_questions_recall_hybrid(student):
    """on the shipped corpus and questions, hybrid search (alpha 0.5) reaches the reference's mean recall@5
    (within 0.01)"""
    shipped_recall(student, "hybrid")


# ----------------------------------------------------------------------------------------- build_prompt
PASSAGE_WORDS = st.sampled_from(["BM25", "ranks", "documents.", "Dense", "vectors", "[1]", "café", "42", "k=5"])
GAPS = st.sampled_from([" ", "  ", "\n", "\t", "\n\n "])


@st.composite
def messy_text(draw, min_words=1):
    words = draw(st.lists(PASSAGE_WORDS, min_size=min_words, max_size=8))
    return draw(GAPS) * draw(st.integers(0, 1)) + "".join(w + draw(GAPS) for w in words)[:-1]


def check_prompt(got, want: str, what: str) -> None:
    if not isinstance(got, str):
        raise AssertionError(f"{what} should return a str, got {type(got).__name__}")
    if got == want:
        return
    mine, theirs = got.split("\n"), want.split("\n")
    for i, (a, b) in enumerate(zip(mine, theirs)):
        if a != b:
            raise AssertionError(f"{what}: line {i + 1} of your prompt differs from the format ({a!r:.80})")
    raise AssertionError(f"{what}: your prompt has {len(mine)} lines, the format gives {len(theirs)} "
                         "(no trailing newline; one line per source)")


@points(2)
@pytest.mark.exercise("build_prompt")
@graded(max_examples=30)
@given(question=messy_text(), hits=st.lists(st.tuples(st.integers(0, 300), messy_text()), min_size=1, max_size=5))
def test_build_prompt_matches_format(student, question, hits):
    """the prompt is INSTRUCTIONS, a blank line, 'Sources:', '[i] (doc <id>) <text>' per hit with whitespace
    collapsed, a blank line, 'Question: <question>', 'Answer:' (exact)"""
    check_prompt(student.build_prompt(question, hits), ref.build_prompt(question, hits), "build_prompt(question, hits)")


@points(1)
@pytest.mark.exercise("build_prompt")
def test_build_prompt_without_hits(student):
    """with no hits, the Sources block is the single line '(no sources found)' (exact)"""
    question = "  What is  BM25?\n"
    check_prompt(student.build_prompt(question, []), ref.build_prompt(question, []), "build_prompt(question, [])")
