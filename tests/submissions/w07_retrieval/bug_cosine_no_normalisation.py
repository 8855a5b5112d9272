# builds on: correct_alternative
# Cosine_top_k ranks by the raw dot product, without dividing by the vector lengths.
import numpy as np


def cosine_top_k(query_vec, doc_matrix, k):
    q = np.asarray(query_vec, dtype=np.float64)
    docs = np.asarray(doc_matrix, dtype=np.float64)
    denom = np.linalg.norm(docs, axis=1) * np.linalg.norm(q)
    scores = np.zeros(docs.shape[0])
    ok = denom > 0  # a zero vector (query or row) keeps cosine 0
    scores[ok] = docs[ok] @ q
    order = np.argsort(-scores, kind="stable")[:k]  # stable: equal scores stay in index order
    return order.tolist(), scores[order].tolist()
