# builds on: correct_alternative
# Recall@k divides by k (that is precision@k), not by the number of relevant ids.
def recall_at_k(ranked_ids, relevant_ids, k):
    relevant = set(relevant_ids)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked_ids[:k])) / k if k else 0.0
