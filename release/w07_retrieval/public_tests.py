"""Public tests for week 7 (retrieval): small, instant checks shipped with the notebook.

Every expected value here was worked out by hand from the rules stated in the notebook; there is no
reference implementation in this file. The hidden tests check the same contract on many more inputs.
"""

import math

import numpy as np

from autograder.student.public import public_test


def _ids(value, what):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    assert isinstance(value, (list, tuple)), f"{what} should be a list of indices, got {type(value).__name__}"
    return [int(v) for v in value]


def _floats(value, what):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    assert isinstance(value, (list, tuple)), f"{what} should be a list of floats, got {type(value).__name__}"
    return [float(v) for v in value]


def _near(got, want, tol=1e-6):
    return len(got) == len(want) and all(abs(g - w) <= tol for g, w in zip(got, want))


# ------------------------------------------------------------------------------------------------
# Exercise 1: chunk_text
# ------------------------------------------------------------------------------------------------


@public_test("chunk_text")
def chunk_windows_by_hand(ns):
    """7 words, chunk_size 3, overlap 1: three chunks, the last one ends at the last word"""
    got = ns.chunk_text("w0 w1 w2 w3 w4 w5 w6", 3, 1)
    assert got == ["w0 w1 w2", "w2 w3 w4", "w4 w5 w6"], (
        f"expected ['w0 w1 w2', 'w2 w3 w4', 'w4 w5 w6'] (step = 3 - 1 = 2), got {got}. Stop after the first "
        "chunk that contains the last word: no extra ['w6'] chunk."
    )


@public_test("chunk_text")
def chunk_keeps_the_tail(ns):
    """6 words, chunk_size 3, overlap 1: the short last chunk 'e f' is kept"""
    got = ns.chunk_text("a b c d e f", 3, 1)
    assert got == ["a b c", "c d e", "e f"], (
        f"expected ['a b c', 'c d e', 'e f'], got {got}. The last chunk may be shorter than chunk_size; "
        "dropping it loses the word 'f'."
    )


@public_test("chunk_text")
def chunk_whitespace_and_empty_text(ns):
    """any whitespace separates words; chunks are joined with single spaces; no words gives []"""
    got = ns.chunk_text("  one\ttwo\n\nthree   four ", 2, 0)
    assert got == ["one two", "three four"], f"expected ['one two', 'three four'] (text.split()), got {got}"
    assert ns.chunk_text(" \n ", 4, 1) == [], "a text without words has no chunks: expected []"


@public_test("chunk_text")
def chunk_rejects_overlap_too_large(ns):
    """overlap >= chunk_size raises ValueError"""
    try:
        ns.chunk_text("a b c d", 2, 2)
    except ValueError:
        return
    raise AssertionError("chunk_text(text, chunk_size=2, overlap=2) should raise ValueError: the step would be 0")


# ------------------------------------------------------------------------------------------------
# Exercise 2: bm25_scores
# ------------------------------------------------------------------------------------------------

_DOCS = [["a", "b"], ["a"], ["b", "b", "c"]]


@public_test("bm25_scores")
def bm25_worked_example(ns):
    """the notebook's worked example: query [c, a] over [a b], [a], [b b c]"""
    idf_c, idf_a = math.log(8 / 3), math.log(1.6)
    want = [idf_a * 2.5 / 2.5, idf_a * 2.5 / 1.9375, idf_c * 2.5 / 3.0625]
    got = _floats(ns.bm25_scores(["c", "a"], _DOCS), "bm25_scores")
    assert _near(got, want, 1e-5), (
        f"expected about {[round(w, 4) for w in want]}, got {[round(g, 4) for g in got]}. Check the IDF "
        "ln(1 + (N - df + 0.5) / (df + 0.5)) and the length term |D| / avgdl with avgdl = 2."
    )


@public_test("bm25_scores")
def bm25_repeated_query_term_and_parameters(ns):
    """a repeated query term counts twice; with b = 0 length is ignored"""
    once = _floats(ns.bm25_scores(["c"], _DOCS), "bm25_scores")
    twice = _floats(ns.bm25_scores(["c", "c"], _DOCS), "bm25_scores")
    assert _near(twice, [2 * s for s in once], 1e-6), "every occurrence of a query term adds its contribution"
    flat = _floats(ns.bm25_scores(["a"], _DOCS, k1=1.5, b=0.0), "bm25_scores(b=0)")
    assert _near(flat, [math.log(1.6)] * 2 + [0.0], 1e-6), (
        f"with b = 0, tf = 1 gives idf * 2.5 / 2.5 = idf in both documents containing 'a'; got {flat}"
    )


@public_test("bm25_scores")
def bm25_empty_cases_and_common_terms(ns):
    """no documents gives []; empty documents score 0; a term in most documents still scores above 0"""
    assert _floats(ns.bm25_scores(["a"], []), "bm25_scores") == [], "no documents: expected []"
    got = _floats(ns.bm25_scores(["a"], [[], ["a"], []]), "bm25_scores")
    assert got[0] == 0 and got[2] == 0 and got[1] > 0, f"empty documents must score 0, got {got}"
    common = _floats(ns.bm25_scores(["b"], [["b"], ["b", "a"], ["c"]]), "bm25_scores")
    assert common[0] > 0 and common[1] > 0, (
        f"'b' is in 2 of 3 documents; the smoothed IDF is still positive, got {common}. Did you forget the "
        "1 + inside the logarithm?"
    )


# ------------------------------------------------------------------------------------------------
# Exercise 3: cosine_top_k
# ------------------------------------------------------------------------------------------------


@public_test("cosine_top_k")
def cosine_by_hand(ns):
    """rows of different lengths: cosine ignores length"""
    docs = np.array([[10.0, 0.0], [1.0, 1.0], [0.0, 3.0], [-2.0, 0.0]], dtype=np.float32)
    query = np.array([2.0, 0.0], dtype=np.float32)
    out = ns.cosine_top_k(query, docs, 3)
    assert isinstance(out, tuple) and len(out) == 2, "return a tuple (indices, scores)"
    idx, scores = _ids(out[0], "indices"), _floats(out[1], "scores")
    assert idx == [0, 1, 2], f"expected indices [0, 1, 2] (cosines 1, 0.7071, 0), got {idx}"
    assert _near(scores, [1.0, math.sqrt(0.5), 0.0], 1e-5), (
        f"expected cosines [1.0, 0.7071, 0.0], got {scores}: divide by both vector lengths"
    )


@public_test("cosine_top_k")
def cosine_zero_vector_and_large_k(ns):
    """a zero row has cosine 0 (no NaN); k larger than n returns all n rows"""
    docs = np.array([[0.0, 0.0], [0.0, -1.0], [1.0, 0.0]], dtype=np.float32)
    idx, scores = ns.cosine_top_k(np.array([1.0, 0.0], dtype=np.float32), docs, 10)
    idx, scores = _ids(idx, "indices"), _floats(scores, "scores")
    assert not any(math.isnan(s) for s in scores), f"a zero vector must give cosine 0, not NaN: {scores}"
    assert idx == [2, 0, 1], f"expected [2, 0, 1] (cosines 1, 0, 0; the tie goes to the lower index), got {idx}"


@public_test("cosine_top_k")
def cosine_ties_to_lower_index(ns):
    """duplicate rows tie; the lower index comes first, also at the cut-off"""
    docs = np.array([[1.0, 1.0], [0.0, 1.0], [2.0, 2.0], [1.0, 1.0]], dtype=np.float32)
    idx, _ = ns.cosine_top_k(np.array([1.0, 1.0], dtype=np.float32), docs, 2)
    assert _ids(idx, "indices") == [0, 2], f"rows 0, 2 and 3 tie with cosine 1; k = 2 keeps [0, 2], got {idx}"


# ------------------------------------------------------------------------------------------------
# Exercise 4: hybrid_scores
# ------------------------------------------------------------------------------------------------


@public_test("hybrid_scores")
def hybrid_by_hand(ns):
    """min-max normalise each list, then alpha * lexical + (1 - alpha) * dense"""
    got = _floats(ns.hybrid_scores([2.0, 10.0, 6.0], [0.5, -0.5, 0.0], 0.25), "hybrid_scores")
    # normalised: bm25 [0, 1, 0.5], dense [1, 0, 0.5]
    assert _near(got, [0.75, 0.25, 0.5]), (
        f"expected [0.75, 0.25, 0.5] (bm25 -> [0, 1, 0.5], dense -> [1, 0, 0.5]), got {got}"
    )


@public_test("hybrid_scores")
def hybrid_constant_list(ns):
    """a list of equal values normalises to zeros"""
    got = _floats(ns.hybrid_scores([0.0, 0.0], [0.2, 0.8], 0.5), "hybrid_scores")
    assert _near(got, [0.0, 0.5]), f"all-zero BM25 scores normalise to [0, 0]; expected [0.0, 0.5], got {got}"
    assert _floats(ns.hybrid_scores([], [], 0.5), "hybrid_scores") == [], "empty lists give []"


# ------------------------------------------------------------------------------------------------
# Exercise 5: mmr
# ------------------------------------------------------------------------------------------------


@public_test("mmr")
def mmr_skips_a_near_duplicate(ns):
    """a near-duplicate of the first pick loses to a different document when lambda = 0.5"""
    docs = np.array([[1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.6, 0.0, 0.8]], dtype=np.float32)
    query = np.array([1.0, 0.05, 0.3], dtype=np.float32)
    picks = _ids(ns.mmr(query, docs, 2, lambda_=0.5), "mmr")
    assert picks == [0, 2], (
        f"expected [0, 2]: document 0 is the most relevant; document 1 is almost a copy of it, so its "
        f"redundancy penalty is large; got {picks}"
    )
    plain = _ids(ns.mmr(query, docs, 3, lambda_=1.0), "mmr")
    assert plain == [0, 1, 2], f"with lambda = 1, MMR is plain ranking by cosine: expected [0, 1, 2], got {plain}"


@public_test("mmr")
def mmr_distinct_and_length(ns):
    """k larger than n returns each document once"""
    docs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    picks = _ids(ns.mmr(np.array([1.0, 0.2], dtype=np.float32), docs, 5, lambda_=0.9), "mmr")
    assert sorted(picks) == [0, 1, 2], f"expected each of the 3 documents exactly once, got {picks}"
    assert picks[0] == 0, f"the first pick is the most similar to the query (0 and 1 tie: lower index), got {picks}"


# ------------------------------------------------------------------------------------------------
# Exercises 6 and 7: recall_at_k, mrr
# ------------------------------------------------------------------------------------------------


@public_test("recall_at_k")
def recall_by_hand(ns):
    """ranked [7, 3, 9, 1], relevant {3, 1, 5}: recall@2 = 1/3, recall@4 = 2/3, recall@10 = 2/3"""
    for k, want in ((2, 1 / 3), (4, 2 / 3), (10, 2 / 3), (0, 0.0)):
        got = ns.recall_at_k([7, 3, 9, 1], {3, 1, 5}, k)
        assert abs(got - want) < 1e-9, f"recall_at_k([7, 3, 9, 1], {{3, 1, 5}}, {k}) should be {want:.4f}, got {got}"


@public_test("recall_at_k")
def recall_without_relevant_ids(ns):
    """no relevant ids gives 0.0"""
    got = ns.recall_at_k([1, 2], [], 2)
    assert got == 0.0, f"with no relevant ids recall is defined as 0.0, got {got}"


@public_test("mrr")
def mrr_by_hand(ns):
    """first relevant result at position 2 gives 0.5; at position 1 gives 1.0"""
    assert abs(ns.mrr([7, 3, 9, 1], {3, 1, 5}) - 0.5) < 1e-9, "the first relevant id, 3, is at position 2: 1/2"
    assert abs(ns.mrr([1, 3], [1]) - 1.0) < 1e-9, "a relevant id at the top gives 1.0"


@public_test("mrr")
def mrr_nothing_found(ns):
    """no relevant id in the ranking, or an empty ranking, gives 0.0"""
    assert ns.mrr([4, 5, 6], [1, 2]) == 0.0, "no relevant id ranked: expected 0.0"
    assert ns.mrr([], [1]) == 0.0, "an empty ranking: expected 0.0"


# ------------------------------------------------------------------------------------------------
# Exercise 8: Retriever
# ------------------------------------------------------------------------------------------------

_TEXTS = ["BM25 ranks documents by terms.", "Dense vectors compare meaning.", "Terms, terms and more TERMS!"]
_VECS = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=np.float32)


@public_test("retriever")
def retriever_bm25_mode(ns):
    """mode='bm25' needs no vector and returns (doc_index, score) pairs, best first"""
    hits = ns.Retriever(_TEXTS, _VECS).search("terms", 3, mode="bm25")
    assert isinstance(hits, list) and all(isinstance(h, tuple) and len(h) == 2 for h in hits), (
        f"search should return a list of (doc_index, score) tuples, got {hits!r}"
    )
    assert [h[0] for h in hits] == [2, 0, 1], (
        f"document 2 says 'terms' four times (tokenize lowercases), document 0 once, document 1 never; "
        f"expected the order [2, 0, 1], got {[h[0] for h in hits]}"
    )
    assert hits[2][1] == 0 and hits[0][1] > hits[1][1] > 0, f"scores should be BM25 scores, got {hits}"


@public_test("retriever")
def retriever_dense_mode_and_errors(ns):
    """mode='dense' ranks by cosine with query_vec; no vector and no embed_fn raises ValueError"""
    retriever = ns.Retriever(_TEXTS, _VECS)
    hits = retriever.search("anything", 2, mode="dense", query_vec=np.array([0.0, 1.0], dtype=np.float32))
    assert [h[0] for h in hits] == [1, 0] and _near([h[1] for h in hits], [1.0, 0.0], 1e-5), (
        f"expected [(1, 1.0), (0, 0.0)] (row 2 is a zero vector: cosine 0, loses the tie), got {hits}"
    )
    try:
        retriever.search("anything", 2, mode="dense")
    except ValueError:
        pass
    else:
        raise AssertionError("a dense search with neither query_vec nor embed_fn should raise ValueError")


@public_test("retriever")
def retriever_uses_embed_fn(ns):
    """without query_vec, the query is embedded with embed_fn"""
    seen = []

    def embed(text):
        seen.append(text)
        return np.array([1.0, 0.0], dtype=np.float32)

    hits = ns.Retriever(_TEXTS, _VECS, embed_fn=embed).search("q", 1, mode="dense")
    assert seen == ["q"], f"embed_fn should be called once with the query, calls: {seen}"
    assert [h[0] for h in hits] == [0], f"the query vector [1, 0] is closest to document 0, got {hits}"


# ------------------------------------------------------------------------------------------------
# Exercise 9: build_prompt
# ------------------------------------------------------------------------------------------------


@public_test("build_prompt")
def prompt_layout(ns):
    """instructions, blank line, numbered sources, blank line, question, 'Answer:'"""
    got = ns.build_prompt("What is  BM25?\n", [(12, "BM25 ranks\ndocuments."), (3, "  Lexical search. ")])
    assert isinstance(got, str), f"build_prompt should return a str, got {type(got).__name__}"
    lines = got.split("\n")
    want = [ns.INSTRUCTIONS, "", "Sources:", "[1] (doc 12) BM25 ranks documents.", "[2] (doc 3) Lexical search.",
            "", "Question: What is BM25?", "Answer:"]
    for i, (a, b) in enumerate(zip(lines, want)):
        assert a == b, f"line {i + 1} should be {b!r}, got {a!r}"
    assert len(lines) == len(want), f"expected {len(want)} lines (no newline at the end), got {len(lines)}"


@public_test("build_prompt")
def prompt_without_sources(ns):
    """no hits: the line after 'Sources:' is '(no sources found)'"""
    lines = ns.build_prompt("Why?", []).split("\n")
    assert lines[2:4] == ["Sources:", "(no sources found)"], f"expected 'Sources:' then '(no sources found)', got {lines[2:4]}"
