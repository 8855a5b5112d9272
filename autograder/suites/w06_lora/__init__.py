"""Week 6: parameter-efficient finetuning with LoRA."""

from autograder.assignments import Assignment, Exercise, WrittenQuestion

# Libraries and calls that would do the exercise for the student: PEFT (its classes, config, injection
# and merge) and Microsoft's loralib.
_PEFT = ("peft", "loralib", "LoraConfig", "get_peft_model", "LoraModel", "PeftModel", "merge_and_unload",
         "inject_adapter_in_model")

ASSIGNMENT = Assignment(
    slug="w06_lora",
    title="Week 6: Parameter-efficient finetuning with LoRA",
    notebook="lora.ipynb",
    exercises=(
        Exercise("count_trainable_parameters", "count_trainable_parameters"),
        Exercise("lora_linear", "LoRALinear", banned=_PEFT),
        Exercise("apply_lora", "apply_lora", banned=_PEFT),
        Exercise("merge_lora", "merge_lora", banned=_PEFT),
    ),
    written=(
        WrittenQuestion(
            "written_lora_init", 2,
            "Why does LoRA start with B = 0 and a random A? What would go wrong if both started at zero, "
            "or if both were random?",
        ),
    ),
    # The trusted GPT, this week's own stand-ins, and the tools that build and read modules in the worker
    # (no exercise's solution, so a snapshot bundle may carry them).
    parts=("gpt", "lora", "lora_tools"),
)
