"""The week-7 reference (``reference/retrieval.py``) against independent oracles.

* BM25: ``rank_bm25.BM25Okapi``. Its IDF is unsmoothed, ``ln((N - df + 0.5) / (df + 0.5))``, with negative
  values floored at ``epsilon * mean IDF``; the course's is smoothed, ``ln(1 + (N - df + 0.5) / (df + 0.5))``.
  Strategy: (1) the reference's documented ``idf="okapi"`` option equals BM25Okapi on every input, the floor
  included; (2) the course's smoothed BM25 equals BM25Okapi's term-frequency and length machinery with its
  IDF table replaced by ``ln(1 + exp(okapi IDF))``, on inputs where the floor cannot act (no IDF negative);
  that identity is exactly smooth = softplus(unsmoothed).
* Exact dense search: ``faiss.IndexFlatIP`` on L2-normalised vectors (inner product = cosine).
* MMR, hybrid scores, metrics, chunking and the prompt: brute-force restatements of the definitions written
  independently here (torch's cosine similarity, scikit-learn's ``minmax_scale``), plus properties.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reference import retrieval as ref

rank_bm25 = pytest.importorskip("rank_bm25")
faiss = pytest.importorskip("faiss")

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
DATA = Path(__file__).resolve().parents[1] / "assignments" / "w07_retrieval" / "data"

VOCAB = ["a", "b", "c", "d", "e", "f"]
docs_st = st.lists(st.lists(st.sampled_from(VOCAB[:4]), max_size=8), min_size=1, max_size=10)
query_st = st.lists(st.sampled_from(VOCAB), max_size=6)


def okapi(docs, k1, b):
    return rank_bm25.BM25Okapi(docs, k1=k1, b=b)


# -------------------------------------------------------------------------------------------------- BM25
@SETTINGS
@given(docs=docs_st, query=query_st, k1=st.sampled_from([0.5, 1.2, 1.5, 2.0]), b=st.sampled_from([0.0, 0.3, 0.75]))
def test_okapi_option_equals_rank_bm25_including_the_floor(docs, query, k1, b):
    assume(any(docs))  # rank_bm25 divides by the mean length and by the number of distinct terms
    want = okapi(docs, k1, b).get_scores(query)
    got = ref.bm25_scores(query, docs, k1=k1, b=b, idf="okapi")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_the_floor_acts_on_common_terms():
    """A term in 3 of 4 documents has a negative unsmoothed IDF: rank_bm25 floors it; the course's IDF is positive."""
    docs = [["a", "b"], ["a"], ["a", "c"], ["d"]]
    bm = okapi(docs, 1.5, 0.75)
    assert math.log(4 - 3 + 0.5) - math.log(3 + 0.5) < 0 and bm.idf["a"] == pytest.approx(0.25 * bm.average_idf)
    np.testing.assert_allclose(ref.bm25_scores(["a"], docs, idf="okapi"), bm.get_scores(["a"]), rtol=1e-12)
    assert all(s > 0 for s in ref.bm25_scores(["a"], docs)[:3])


@SETTINGS
@given(docs=docs_st, query=query_st, k1=st.sampled_from([0.5, 1.2, 1.5, 2.0]), b=st.sampled_from([0.0, 0.5, 0.75, 1.0]))
def test_course_bm25_equals_rank_bm25_with_the_smoothed_idf(docs, query, k1, b):
    assume(any(docs))
    bm = okapi(docs, k1, b)
    n = len(docs)
    unfloored = {t: math.log(n - f + 0.5) - math.log(f + 0.5) for t, f in ref.BM25Index(docs).df.items()}
    assume(all(v >= 0 for v in unfloored.values()))  # the floor cannot act: BM25Okapi's table is unfloored
    assert bm.idf == pytest.approx(unfloored, rel=1e-12)
    bm.idf = {t: math.log1p(math.exp(v)) for t, v in bm.idf.items()}  # softplus of ln(x) is ln(1 + x)
    if b == 1.0:  # BM25Okapi computes 0/0 for an empty document when b = 1; the course defines its score as 0
        assume(all(docs))
    want = bm.get_scores([t for t in query if t in bm.idf])  # unseen terms: the reference's tf = 0 makes them 0
    np.testing.assert_allclose(ref.bm25_scores(query, docs, k1=k1, b=b), want, rtol=1e-12, atol=1e-12)


def test_bm25_worked_example_of_the_notebook():
    docs = [["a", "b"], ["a"], ["b", "b", "c"]]
    got = ref.bm25_scores(["c", "a"], docs)
    assert got == pytest.approx([math.log(1.6), math.log(1.6) * 2.5 / 1.9375, math.log(8 / 3) * 2.5 / 3.0625])


def test_bm25_edge_cases():
    assert ref.bm25_scores(["a"], []) == []
    assert ref.bm25_scores(["a"], [[], []]) == [0.0, 0.0]
    assert ref.bm25_scores([], [["a"]]) == [0.0]
    assert ref.bm25_scores(["a"], [[], ["a"]], b=1.0)[0] == 0.0
    assert ref.bm25_scores(["a", "a"], [["a"], ["b"]]) == [2 * ref.bm25_scores(["a"], [["a"], ["b"]])[0], 0.0]


# ------------------------------------------------------------------------------------------- dense search
def faiss_search(query, docs, k):
    def unit(m):
        m = np.array(m, dtype=np.float32)
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return np.where(norms > 0, m / np.where(norms > 0, norms, 1), 0).astype(np.float32)

    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(unit(docs))
    scores, ids = index.search(unit(query[None, :]), k)
    return ids[0].tolist(), scores[0].tolist()


@SETTINGS
@given(n=st.integers(1, 40), d=st.integers(1, 16), k=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_cosine_top_k_equals_faiss_index_flat_ip(n, d, k, seed):
    rng = np.random.default_rng(seed)
    docs = (rng.standard_normal((n, d)) * rng.choice([0.1, 1.0, 5.0], size=(n, 1))).astype(np.float32)
    query = rng.standard_normal(d).astype(np.float32)
    k = min(k, n)  # FAISS pads with -1 beyond n
    ids, scores = ref.cosine_top_k(query, docs, k)
    f_ids, f_scores = faiss_search(query, docs, k)
    np.testing.assert_allclose(scores, f_scores, atol=1e-5)
    full = ref.cosine_scores(query, docs)
    gaps = np.diff(np.sort(full)[::-1][: k + 1])
    if len(gaps) == 0 or np.abs(gaps).min() > 1e-5:  # no near-ties: the order must agree exactly
        assert ids == f_ids
    else:  # near-ties: FAISS (float32) and the reference may swap them; the scores still agree
        np.testing.assert_allclose(full[f_ids], scores, atol=1e-5)


def test_cosine_on_the_shipped_vectors_equals_faiss():
    docs = np.load(DATA / "doc_vectors.npy").astype(np.float32)
    questions = np.load(DATA / "question_vectors.npy").astype(np.float32)
    for q in questions[:20]:
        ids, scores = ref.cosine_top_k(q, docs, 10)
        f_ids, f_scores = faiss_search(q, docs, 10)
        np.testing.assert_allclose(scores, f_scores, atol=1e-5)
        assert set(ids[:5]) == set(f_ids[:5]) or np.allclose(sorted(scores[:6]), sorted(f_scores[:6]), atol=1e-5)


def test_cosine_zero_vectors_and_ties():
    docs = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.0, 1.0]], dtype=np.float32)
    ids, scores = ref.cosine_top_k(np.array([1.0, 1.0], dtype=np.float32), docs, 10)
    assert ids == [1, 2, 3, 0] and scores[0] == pytest.approx(1.0) and scores[-1] == 0.0
    ids, scores = ref.cosine_top_k(np.zeros(2, dtype=np.float32), docs, 2)
    assert ids == [0, 1] and scores == [0.0, 0.0]
    assert ref.cosine_top_k(np.ones(2), docs, 0) == ([], [])


# -------------------------------------------------------------------------------------------------- MMR
def mmr_brute(query, docs, k, lam):
    """MMR restated with torch's cosine similarity (eps-guarded: zero vectors give 0)."""
    q = torch.tensor(query, dtype=torch.float64)
    d = torch.tensor(docs, dtype=torch.float64)
    rel = torch.nn.functional.cosine_similarity(d, q[None, :], dim=1, eps=1e-300)
    sim = torch.nn.functional.cosine_similarity(d[:, None, :], d[None, :, :], dim=2, eps=1e-300)
    picked = []
    for _ in range(min(k, len(docs))):
        best, best_score = None, None
        for i in range(len(docs)):
            if i in picked:
                continue
            score = rel[i] if not picked else lam * rel[i] - (1 - lam) * max(sim[i, j] for j in picked)
            if best is None or score > best_score:  # strict: the first (lowest) index wins a tie
                best, best_score = i, score
        picked.append(best)
    return picked


@SETTINGS
@given(n=st.integers(1, 12), d=st.integers(1, 6), k=st.integers(0, 14), lam=st.sampled_from([0.0, 0.3, 0.5, 0.8, 1.0]),
       seed=st.integers(0, 2**31 - 1), zeros=st.booleans())
def test_mmr_equals_a_brute_force_restatement(n, d, k, lam, seed, zeros):
    rng = np.random.default_rng(seed)
    docs = rng.standard_normal((n, d))
    if zeros:
        docs[rng.random(n) < 0.3] = 0.0
    query = rng.standard_normal(d)
    assert ref.mmr(query, docs, k, lam) == mmr_brute(query, docs, k, lam)


def test_mmr_with_lambda_one_is_cosine_ranking_and_never_repeats():
    rng = np.random.default_rng(3)
    docs = rng.standard_normal((9, 4))
    docs[4] = docs[1]
    query = rng.standard_normal(4)
    assert ref.mmr(query, docs, 9, 1.0) == ref.cosine_top_k(query, docs, 9)[0]
    picks = ref.mmr(query, docs, 20, 0.5)
    assert sorted(picks) == list(range(9))


# ------------------------------------------------------------------------------------------- hybrid
@SETTINGS
@given(data=st.data(), n=st.integers(1, 12), alpha=st.floats(0, 1))
def test_hybrid_equals_sklearn_minmax_scale(data, n, alpha):
    from sklearn.preprocessing import minmax_scale

    lexical = data.draw(st.lists(st.floats(0, 50), min_size=n, max_size=n))
    dense = data.draw(st.lists(st.floats(-1, 1), min_size=n, max_size=n))

    for values in (lexical, dense):  # sklearn treats a range below 10 * eps as constant; the course only 0
        assume(max(values) == min(values) or max(values) - min(values) > 1e-6)

    def scale(values):  # sklearn maps a constant column to its lower bound, 0: the course's convention too
        return minmax_scale(np.array(values, dtype=np.float64)[:, None])[:, 0]

    want = alpha * scale(lexical) + (1 - alpha) * scale(dense)
    np.testing.assert_allclose(ref.hybrid_scores(lexical, dense, alpha), want, atol=1e-12)


def test_hybrid_edge_cases():
    assert ref.hybrid_scores([], [], 0.5) == []
    assert ref.hybrid_scores([3.0], [0.2], 0.5) == [0.0]
    with pytest.raises(ValueError):
        ref.hybrid_scores([1.0], [1.0, 2.0], 0.5)


# ------------------------------------------------------------------------------------------- metrics
@SETTINGS
@given(ranked=st.permutations(list(range(12))), cut=st.integers(0, 12),
       relevant=st.lists(st.integers(0, 15), max_size=5, unique=True), k=st.integers(0, 15))
def test_metrics_equal_their_definitions(ranked, cut, relevant, k):
    ranked = ranked[:cut]
    found = sum(1 for doc in ranked[:k] if doc in relevant)
    assert ref.recall_at_k(ranked, relevant, k) == (found / len(relevant) if relevant else 0.0)
    positions = [p for p, doc in enumerate(ranked) if doc in relevant]
    assert ref.mrr(ranked, relevant) == (1 / (positions[0] + 1) if positions else 0.0)


def test_metrics_by_hand():
    assert ref.recall_at_k([7, 3, 9, 1], {3, 1, 5}, 2) == pytest.approx(1 / 3)
    assert ref.recall_at_k([7, 3, 9, 1], {3, 1, 5}, 4) == pytest.approx(2 / 3)
    assert ref.mrr([7, 3, 9, 1], {3, 1, 5}) == 0.5
    assert ref.recall_at_k([1], [], 1) == 0.0 and ref.mrr([], [1]) == 0.0


# ------------------------------------------------------------------------------------------- chunking
@SETTINGS
@given(words=st.lists(st.sampled_from(["x", "yy", "z1", "é"]), max_size=40), size=st.integers(1, 9), data=st.data())
def test_chunks_are_the_stated_windows(words, size, data):
    overlap = data.draw(st.integers(0, size - 1))
    text = "\n ".join(words)
    chunks = ref.chunk_text(text, size, overlap)
    step = size - overlap
    count = 0 if not words else 1 + max(0, math.ceil((len(words) - size) / step))
    assert chunks == [" ".join(words[i * step:i * step + size]) for i in range(count)]
    if chunks:  # every word is covered, the last chunk ends at the last word, no chunk inside the previous
        assert chunks[-1].split()[-1] == words[-1]
        assert all(len(c.split()) == size for c in chunks[:-1])
        assert len(chunks) == 1 or (len(words) - (count - 1) * step) > overlap


def test_chunk_rejects_bad_parameters():
    for size, overlap in ((3, 3), (3, 4), (0, 0), (2, -1)):
        with pytest.raises(ValueError):
            ref.chunk_text("a b c", size, overlap)


# ------------------------------------------------------------------------------------------- retriever
def test_retriever_modes_compose_the_parts():
    texts = ["RAG: retrieve, then generate.", "BM25 ranks terms", "Vectors and cosine", ""]
    emb = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    emb[3] = 0
    q = np.random.default_rng(1).standard_normal(5).astype(np.float32)
    r = ref.Retriever(texts, emb)
    lexical = ref.bm25_scores(ref.tokenize("bm25 terms, RAG"), [ref.tokenize(t) for t in texts])
    assert r.scores("bm25 terms, RAG") == lexical
    dense = ref.cosine_scores(q, emb).tolist()
    assert r.scores("x", "dense", query_vec=q) == pytest.approx(dense)
    assert r.scores("bm25 terms, RAG", "hybrid", query_vec=q, alpha=0.3) == pytest.approx(
        ref.hybrid_scores(lexical, dense, 0.3))
    hits = r.search("bm25 terms, RAG", 10, "hybrid", query_vec=q)
    assert [i for i, _ in hits] == ref.top_k_order(ref.hybrid_scores(lexical, dense, 0.5), 10)
    with pytest.raises(ValueError):
        r.search("x", 2, "dense")
    with pytest.raises(ValueError):
        r.search("x", 2, "sparse", query_vec=q)
    embedder = ref.HashingEmbedder(5)
    assert ref.Retriever(texts, emb, embed_fn=embedder).search("cosine", 2, "dense") == \
        r.search("cosine", 2, "dense", query_vec=embedder("cosine"))


def test_hashing_embedder_is_deterministic_unit_and_zero_for_empty_text():
    e = ref.HashingEmbedder(32)
    v = e("BM25 ranks documents")
    assert v.dtype == np.float32 and abs(float(np.linalg.norm(v)) - 1) < 1e-6
    assert np.array_equal(v, ref.HashingEmbedder(32)("bm25  RANKS documents!"))
    assert not e("...").any()


def test_shipped_data_is_consistent_and_small():
    docs = [json.loads(line) for line in (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    questions = [json.loads(line) for line in (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["id"] for d in docs] == list(range(len(docs))) and len(docs) >= 250
    assert all(0 <= i < len(docs) for q in questions for i in q["relevant"]) and len(questions) >= 80
    vecs, qvecs = np.load(DATA / "doc_vectors.npy"), np.load(DATA / "question_vectors.npy")
    assert vecs.dtype == np.float16 and vecs.shape == (len(docs), 384) and qvecs.shape == (len(questions), 384)
    assert np.allclose(np.linalg.norm(vecs.astype(np.float32), axis=1), 1, atol=2e-3)
    assert sum(p.stat().st_size for p in DATA.iterdir() if p.is_file()) < 2_000_000


def test_hybrid_beats_both_modes_on_the_shipped_questions():
    """The week's story, checked: on the shipped set hybrid > dense > BM25 in recall@5."""
    docs = [json.loads(line) for line in (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    questions = [json.loads(line) for line in (DATA / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    r = ref.Retriever([f"{d['title']}. {d['text']}" for d in docs], np.load(DATA / "doc_vectors.npy").astype(np.float32))
    qvecs = np.load(DATA / "question_vectors.npy").astype(np.float32)
    recall = {mode: np.mean([ref.recall_at_k([i for i, _ in r.search(q["question"], 5, mode, query_vec=v)],
                                             q["relevant"], 5) for q, v in zip(questions, qvecs)])
              for mode in ("bm25", "dense", "hybrid")}
    assert recall["hybrid"] > recall["dense"] > recall["bm25"] > 0.7, recall


# ------------------------------------------------------------------------------------------- prompt
def test_prompt_format():
    prompt = ref.build_prompt(" Why\tBM25? ", [(4, "Lexical\n\nsearch."), (9, "  Dense  ")])
    assert prompt == "\n".join([ref.INSTRUCTIONS, "", "Sources:", "[1] (doc 4) Lexical search.", "[2] (doc 9) Dense",
                                "", "Question: Why BM25?", "Answer:"])
    assert ref.build_prompt("q", []).split("\n")[2:4] == ["Sources:", ref.NO_SOURCES]
