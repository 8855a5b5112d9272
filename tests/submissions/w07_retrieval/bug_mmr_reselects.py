# builds on: correct_alternative
# MMR never removes a picked document from the candidates, so it can be picked again.
import numpy as np


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
    return picked
