# Hostile: results that are not plain data, or that pretend to equal anything. The worker sends only data,
# so objects arrive as opaque handles; NaN, booleans and strings are refused by the checks, and the one slow
# function is stopped by the time limit without costing the other exercises anything.
import time


class AlwaysEqual(list):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False


class Sneaky(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


def chunk_text(text, chunk_size, overlap):
    return AlwaysEqual(["x"])  # a list subclass: no data form, it becomes a handle


def bm25_scores(query_tokens, docs_tokens, k1=1.5, b=0.75):
    return [float("nan")] * len(docs_tokens)


def cosine_top_k(query_vec, doc_matrix, k):
    return (i for i in range(k)), None  # a generator


def hybrid_scores(bm25, dense, alpha):
    return {"scores": list(bm25)}


def mmr(query_vec, doc_matrix, k, lambda_=0.5):
    time.sleep(60)  # far past the per-call time limit
    return []


def recall_at_k(ranked_ids, relevant_ids, k):
    return True


def mrr(ranked_ids, relevant_ids):
    return "1.0"


class Retriever:
    def __init__(self, docs, embeddings, embed_fn=None):
        self.n = len(docs)

    def search(self, query, k=5, mode="bm25", query_vec=None, alpha=0.5):
        return [{"doc": i, "score": 1.0} for i in range(min(k, self.n))]


def build_prompt(question, hits):
    return Sneaky("whatever you expect")
