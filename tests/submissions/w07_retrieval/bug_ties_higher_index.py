# builds on: correct_alternative
# Rankings sort (score, index) pairs in reverse, so equal scores go to the higher index.
import numpy as np


def cosine_top_k(query_vec, doc_matrix, k):
    q = np.asarray(query_vec, dtype=np.float64)
    docs = np.asarray(doc_matrix, dtype=np.float64)
    denom = np.linalg.norm(docs, axis=1) * np.linalg.norm(q)
    scores = np.zeros(docs.shape[0])
    ok = denom > 0  # a zero vector (query or row) keeps cosine 0
    scores[ok] = (docs[ok] @ q) / denom[ok]
    order = np.array([i for _, i in sorted(zip(scores.tolist(), range(len(scores))), reverse=True)][:k], dtype=int)
    return order.tolist(), scores[order].tolist()


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
        best = [i for _, i in sorted(zip(scores, range(n)), reverse=True)][:k]
        return [(i, float(scores[i])) for i in best]
