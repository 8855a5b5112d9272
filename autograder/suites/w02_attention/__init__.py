"""Week 2: attention."""

from autograder.assignments import Assignment, Exercise, WrittenQuestion

_SOFTMAX = ("softmax", "log_softmax", "Softmax", "LogSoftmax")
_ATTENTION = ("scaled_dot_product_attention", "MultiheadAttention", "multi_head_attention_forward")

ASSIGNMENT = Assignment(
    slug="w02_attention",
    title="Week 2: Attention",
    notebook="attention.ipynb",
    exercises=(
        Exercise("softmax", "softmax", banned=_SOFTMAX),
        Exercise("causal_mask", "causal_mask"),
        Exercise("scaled_dot_product_attention", "scaled_dot_product_attention", banned=_SOFTMAX + _ATTENTION),
        Exercise("multi_head_attention", "MultiHeadAttention", banned=_SOFTMAX + _ATTENTION),
    ),
    written=(
        WrittenQuestion(
            "written_self_attention", 2,
            "In your own words, explain what self-attention computes and why the causal mask is needed.",
        ),
    ),
)
