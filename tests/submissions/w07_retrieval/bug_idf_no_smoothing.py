# builds on: correct_alternative
# The classic IDF without the +1 inside the logarithm: negative for terms in most documents.
import math
from collections import Counter


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
        idf = math.log((n_docs - doc_freq[term] + 0.5) / (doc_freq[term] + 0.5))
        for i, c in enumerate(counts):
            tf = c[term]
            if tf:  # absent terms add nothing (and an empty document never divides by zero)
                scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[i] / avgdl))
    return scores
