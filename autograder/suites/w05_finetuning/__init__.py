"""Week 5: finetuning (a classification head, instruction data, preference optimisation with DPO)."""

from autograder.assignments import Assignment, Exercise, WrittenQuestion

ASSIGNMENT = Assignment(
    slug="w05_finetuning",
    title="Week 5: Finetuning (classification, instructions, DPO)",
    notebook="finetuning.ipynb",
    exercises=(
        Exercise("prepare_for_classification", "prepare_for_classification"),
        Exercise("classification_logits", "classification_logits"),
        Exercise("classification_accuracy", "classification_accuracy"),
        Exercise("format_instruction", "format_instruction"),
        Exercise("collate_instructions", "collate_instructions"),
        Exercise("sequence_logprob", "sequence_logprob"),
        Exercise("dpo_loss", "dpo_loss"),
    ),
    written=(
        WrittenQuestion(
            "written_preferences", 2,
            "What does RLHF need that DPO does not, and what does beta control in the DPO loss?",
        ),
    ),
    # The trusted GPT (the model every classification test runs on), this week's own stand-ins, and the
    # tools that read a model in the worker (no exercise's solution, so a snapshot bundle may carry them).
    parts=("gpt", "finetuning", "finetuning_tools"),
)
