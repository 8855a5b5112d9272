# Bug: passages go into the prompt as they are, newlines included, and sources are numbered from 0.
# Port math
from collections import Counter

import numpy as np


def chunk_text(text, chunk_size, overlap):
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if not 0 <= overlap < chunk_size:
        raise ValueError(f"need 0 <= overlap < chunk_size, got overlap={overlap}, chunk_size={chunk_size}")
    words = text.split()
    step = chunk_size - overlap
    chunks = []
    for start in range(0, len(words), step):
        chunks.append(" ".join(words[start:start + chunk_size]))
        if start + chunk_size >= len(words):  # this chunk reached the last word
            break
    return chunks



def bm25_scores(query_tokens, docs_tokens, k1=1.5, b=0.75):
    n_docs = len(docs_tokens)
    if n_docs == 0:
        return []
    counts = [Counter(doc) for doc in docs_tokens]
    lengths = [len(doc) for doc in docs_tokens]
    avgdl = sum(lengths) / n_docs
    doc_freq = Counter()
    for c in counts:
        doc_freq.update(c.keys())  # each document counts once per term
    scores = [0.0] * n_docs
    for term in query_tokens:
        idf = math.log(1 + (n_docs - doc_freq[term] + 0.5) / (doc_freq[term] + 0.5))
        for i, c in enumerate(counts):
            tf = c[term]
            if tf:  # absent terms add nothing (and an empty document never divides by zero)
                scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[i] / avgdl))
    return scores



def cosine_top_k(query_vec, doc_matrix, k):
    q = np.asarray(query_vec, dtype=np.float64)
    docs = np.asarray(doc_matrix, dtype=np.float64)
    denom = np.linalg.norm(docs, axis=1) * np.linalg.norm(q)
    scores = np.zeros(docs.shape[0])
    ok = denom > 0  # a zero vector (query or row) keeps cosine 0
    scores[ok] = (docs[ok] @ q) / denom[ok]
    order = np.argsort(-scores, kind="stable")[:k]  # stable: equal scores stay in index order
    return order.tolist(), scores[order].tolist()



def hybrid_scores(bm25, dense, alpha):
    def min_max(values):
        values = [float(v) for v in values]
        if not values:
            return []
        lo, hi = min(values), max(values)
        if hi == lo:  # no spread, no ranking information
            return [0.0] * len(values)
        return [(v - lo) / (hi - lo) for v in values]

    if len(bm25) != len(dense):
        raise ValueError(f"bm25 has {len(bm25)} scores but dense has {len(dense)}")
    return [alpha * x + (1 - alpha) * y for x, y in zip(min_max(bm25), min_max(dense))]



def mmr(query_vec, doc_matrix, k, lambda_=0.5):
    def unit_rows(m):
        norms = np.linalg.norm(m, axis=-1, keepdims=True)
        return m / np.where(norms > 0, norms, 1.0)  # zero rows stay zero: cosine 0

    docs = unit_rows(np.asarray(doc_matrix, dtype=np.float64))
    q = unit_rows(np.asarray(query_vec, dtype=np.float64))
    relevance = docs @ q
    similarity = docs @ docs.T
    picked, candidates = [], list(range(docs.shape[0]))
    while candidates and len(picked) < k:
        if picked:
            redundancy = similarity[:, picked].max(axis=1)
            scores = lambda_ * relevance - (1 - lambda_) * redundancy
        else:
            scores = relevance
        best = max(candidates, key=lambda i: (scores[i], -i))  # highest score, then lowest index
        picked.append(best)
        candidates.remove(best)
    return picked



def recall_at_k(ranked_ids, relevant_ids, k):
    relevant = set(relevant_ids)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked_ids[:k])) / len(relevant)



def mrr(ranked_ids, relevant_ids):
    relevant = set(relevant_ids)
    for position, doc_id in enumerate(ranked_ids, start=1):
        if doc_id in relevant:
            return 1.0 / position
    return 0.0



class Retriever:

    def __init__(self, docs, embeddings, embed_fn=None):
        self.docs = list(docs)
        self.embeddings = np.asarray(embeddings, dtype=np.float32)
        self.embed_fn = embed_fn
        self.doc_tokens = [tokenize(doc) for doc in self.docs]  # once, not per query

    def search(self, query, k=5, mode="bm25", query_vec=None, alpha=0.5):
        if mode not in ("bm25", "dense", "hybrid"):
            raise ValueError(f"mode must be 'bm25', 'dense' or 'hybrid', got {mode!r}")
        n = len(self.docs)
        if mode in ("dense", "hybrid"):
            if query_vec is None:
                if self.embed_fn is None:
                    raise ValueError(f"mode {mode!r} needs a query_vec or an embed_fn")
                query_vec = self.embed_fn(query)
            order, sims = cosine_top_k(query_vec, self.embeddings, n)  # every document, then back in index order
            dense = [0.0] * n
            for i, s in zip(order, sims):
                dense[i] = s
        if mode in ("bm25", "hybrid"):
            lexical = bm25_scores(tokenize(query), self.doc_tokens)
        if mode == "bm25":
            scores = lexical
        elif mode == "dense":
            scores = dense
        else:
            scores = hybrid_scores(lexical, dense, alpha)
        best = sorted(range(n), key=lambda i: (-scores[i], i))[:k]
        return [(i, float(scores[i])) for i in best]



def build_prompt(question, hits):
    lines = [INSTRUCTIONS, "", "Sources:"]
    if not hits:
        lines.append(NO_SOURCES)
    for number, (doc_id, text) in enumerate(hits, start=1):
        lines.append(f"[{number - 1}] (doc {doc_id}) {text.strip()}")
    lines += ["", "Question: " + " ".join(question.split()), "Answer:"]
    prompt = "\n".join(lines)  # no newline after "Answer:"
    return prompt

