"""Week 3: the GPT model and text generation (contract: docs/w03_contract.md)."""

from autograder.assignments import Assignment, Exercise, WrittenQuestion

_LIBRARIES = ("transformers",)  # a library's GPT-2 or logits warpers are not the exercise
_TORCH_BLOCKS = ("TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder", "TransformerDecoder",
                 "Transformer", "MultiheadAttention")

ASSIGNMENT = Assignment(
    slug="w03_gpt",
    title="Week 3: The GPT model and text generation",
    notebook="gpt.ipynb",
    exercises=(
        Exercise("layer_norm", "LayerNorm", banned=("LayerNorm", "layer_norm", "group_norm", "GroupNorm") + _LIBRARIES),
        Exercise("gelu", "GELU", banned=("GELU", "gelu") + _LIBRARIES),
        Exercise("feed_forward", "FeedForward", banned=_LIBRARIES),
        Exercise("transformer_block", "TransformerBlock", banned=_TORCH_BLOCKS + _LIBRARIES),
        Exercise("gpt_model", "GPTModel", banned=_TORCH_BLOCKS + _LIBRARIES),
        Exercise("top_k_filter", "top_k_filter", banned=_LIBRARIES),
        Exercise("top_p_filter", "top_p_filter", banned=_LIBRARIES),
        Exercise("generate", "generate", banned=_LIBRARIES),
        Exercise("generate_cached", "generate_cached", banned=_LIBRARIES),
    ),
    written=(
        WrittenQuestion(
            "written_kv_cache", 2,
            "Why does a KV cache speed up generation, and what does it cost? Estimate the size of the cache "
            "for GPT-2 small at 1,024 tokens in fp32.",
        ),
    ),
    parts=("gpt",),
)
