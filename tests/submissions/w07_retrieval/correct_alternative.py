# A correct week-7 submission written differently from the instructor's: torch in float32 for the vector
# exercises, heapq for top-k, a while loop for chunking, a precomputed BM25 index in the Retriever.
import heapq
import math
import re

import numpy as np
import torch


def chunk_text(text, chunk_size, overlap):
    if chunk_size <= 0 or overlap < 0 or overlap >= chunk_size:
        raise ValueError("need chunk_size >= 1 and 0 <= overlap < chunk_size")
    words = text.split()
    out, start = [], 0
    while words:
        end = min(start + chunk_size, len(words))
        out.append(" ".join(words[start:end]))
        if end == len(words):
            break
        start = end - overlap
    return out


def _idf(n_docs, df):
    return math.log((n_docs - df + 0.5) / (df + 0.5) + 1.0)


def bm25_scores(query_tokens, docs_tokens, k1=1.5, b=0.75):
    n = len(docs_tokens)
    if not n:
        return []
    avgdl = sum(map(len, docs_tokens)) / n
    doc_sets = [set(doc) for doc in docs_tokens]
    idf = {term: _idf(n, sum(term in s for s in doc_sets)) for term in set(query_tokens)}
    result = []
    for doc in docs_tokens:
        total = 0.0
        for term in query_tokens:
            tf = doc.count(term)
            if tf > 0:
                total += idf[term] * (tf * (k1 + 1)) / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        result.append(total)
    return result


def _cosines(query_vec, doc_matrix):
    q = torch.as_tensor(np.asarray(query_vec), dtype=torch.float32)
    d = torch.as_tensor(np.asarray(doc_matrix), dtype=torch.float32).reshape(-1, q.shape[0])
    qn = q / q.norm() if q.norm() > 0 else q
    dn_norm = d.norm(dim=1, keepdim=True)
    dn = torch.where(dn_norm > 0, d / dn_norm.clamp_min(1e-30), torch.zeros_like(d))
    return (dn @ qn).tolist()


def cosine_top_k(query_vec, doc_matrix, k):
    sims = _cosines(query_vec, doc_matrix)
    best = heapq.nsmallest(k, range(len(sims)), key=lambda i: (-sims[i], i))
    return best, [sims[i] for i in best]


def hybrid_scores(bm25, dense, alpha):
    out = []
    lists = []
    for values in (np.asarray(bm25, dtype=np.float64), np.asarray(dense, dtype=np.float64)):
        spread = np.ptp(values) if values.size else 0.0
        lists.append((values - values.min()) / spread if spread > 0 else np.zeros_like(values))
    for x, y in zip(*lists):
        out.append(float(alpha * x + (1 - alpha) * y))
    return out


def mmr(query_vec, doc_matrix, k, lambda_=0.5):
    q = torch.as_tensor(np.asarray(query_vec), dtype=torch.float32)
    d = torch.as_tensor(np.asarray(doc_matrix), dtype=torch.float32)
    norms = d.norm(dim=1, keepdim=True)
    d = torch.where(norms > 0, d / norms.clamp_min(1e-30), torch.zeros_like(d))
    q = q / q.norm() if q.norm() > 0 else q
    relevance = (d @ q).tolist()
    pairwise = (d @ d.T).tolist()
    chosen, left = [], set(range(len(relevance)))
    for _ in range(min(k, len(relevance))):
        def value(i):
            if not chosen:
                return relevance[i]
            return lambda_ * relevance[i] - (1 - lambda_) * max(pairwise[i][j] for j in chosen)
        pick = min(left, key=lambda i: (-value(i), i))
        chosen.append(pick)
        left.discard(pick)
    return chosen


def recall_at_k(ranked_ids, relevant_ids, k):
    relevant = set(relevant_ids)
    hits = sum(1 for doc in ranked_ids[:max(k, 0)] if doc in relevant)
    return hits / len(relevant) if relevant else 0.0


def mrr(ranked_ids, relevant_ids):
    relevant = set(relevant_ids)
    rank = next((r for r, doc in enumerate(ranked_ids, 1) if doc in relevant), None)
    return 0.0 if rank is None else 1.0 / rank


class Retriever:
    def __init__(self, docs, embeddings, embed_fn=None):
        self.docs = docs
        self.matrix = np.array(embeddings, dtype=np.float32)
        self.embed_fn = embed_fn
        self.tokens = [tokenize(text) for text in docs]

    def _vector(self, query, query_vec):
        if query_vec is not None:
            return query_vec
        if self.embed_fn is None:
            raise ValueError("no query_vec and no embed_fn")
        return self.embed_fn(query)

    def search(self, query, k=5, mode="bm25", query_vec=None, alpha=0.5):
        if mode == "bm25":
            scores = bm25_scores(tokenize(query), self.tokens)
        elif mode == "dense":
            scores = _cosines(self._vector(query, query_vec), self.matrix)
        elif mode == "hybrid":
            dense = _cosines(self._vector(query, query_vec), self.matrix)
            scores = hybrid_scores(bm25_scores(tokenize(query), self.tokens), dense, alpha)
        else:
            raise ValueError("unknown mode " + repr(mode))
        top = heapq.nsmallest(k, range(len(scores)), key=lambda i: (-scores[i], i))
        return [(i, scores[i]) for i in top]


def build_prompt(question, hits):
    def flat(s):
        return re.sub(r"\s+", " ", s).strip()
    body = "".join(f"[{n}] (doc {doc_id}) {flat(text)}\n" for n, (doc_id, text) in enumerate(hits, 1)) or NO_SOURCES + "\n"
    return INSTRUCTIONS + "\n\nSources:\n" + body + "\nQuestion: " + flat(question) + "\nAnswer:"
