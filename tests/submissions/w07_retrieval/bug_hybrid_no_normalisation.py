# builds on: correct_alternative
# Hybrid scores add the raw BM25 and cosine scores, without min-max normalisation.
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
    return [alpha * float(x) + (1 - alpha) * float(y) for x, y in zip(bm25, dense)]
