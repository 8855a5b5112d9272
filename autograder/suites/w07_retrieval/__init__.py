"""Week 7: retrieval-augmented generation (a retriever)."""

from autograder.assignments import Assignment, Exercise, WrittenQuestion

_LIBRARIES = ("rank_bm25", "BM25Okapi", "faiss", "sklearn", "sentence_transformers")
_COSINE = ("cosine_similarity", "CosineSimilarity")

ASSIGNMENT = Assignment(
    slug="w07_retrieval",
    title="Week 7: Retrieval-augmented generation",
    notebook="retrieval.ipynb",
    exercises=(
        Exercise("chunk_text", "chunk_text"),
        Exercise("bm25_scores", "bm25_scores", banned=_LIBRARIES),
        Exercise("cosine_top_k", "cosine_top_k", banned=_LIBRARIES + _COSINE),
        Exercise("hybrid_scores", "hybrid_scores", banned=_LIBRARIES + ("minmax_scale", "MinMaxScaler")),
        Exercise("mmr", "mmr", banned=_LIBRARIES + _COSINE),
        Exercise("recall_at_k", "recall_at_k", banned=_LIBRARIES),
        Exercise("mrr", "mrr", banned=_LIBRARIES),
        Exercise("retriever", "Retriever", banned=_LIBRARIES + _COSINE),
        Exercise("build_prompt", "build_prompt"),
    ),
    written=(
        WrittenQuestion(
            "written_hybrid_retrieval", 2,
            "Using results from this notebook, explain when lexical (BM25) retrieval beats dense retrieval, when "
            "the opposite holds, and why a hybrid of the two helps.",
        ),
    ),
    parts=("retrieval",),
)
