"""Week 4: pretraining, the training loop from scratch."""

from autograder.assignments import Assignment, Exercise, WrittenQuestion

# The loss is written from log-sum-exp by hand: every PyTorch shortcut to it is banned.
_LOSS = ("cross_entropy", "nll_loss", "log_softmax", "logsumexp", "softmax", "CrossEntropyLoss", "NLLLoss",
         "LogSoftmax", "Softmax")
# AdamW is written from scratch on top of torch.optim.Optimizer; PyTorch's Adam family is banned.
_ADAM = ("Adam", "AdamW", "adam", "adamw", "NAdam", "RAdam", "Adamax", "_functional", "_single_tensor_adamw",
         "_multi_tensor_adamw", "_fused_adamw")
_SCHEDULERS = ("lr_scheduler", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "LambdaLR", "LinearLR",
               "OneCycleLR", "SequentialLR")
_CLIP = ("clip_grad_norm_", "clip_grad_norm", "clip_grads_with_norm_", "get_total_norm", "clip_grad_value_")

ASSIGNMENT = Assignment(
    slug="w04_pretraining",
    title="Week 4: Pretraining",
    notebook="pretraining.ipynb",
    exercises=(
        Exercise("gpt_dataset", "GPTDataset"),  # with create_dataloader
        Exercise("cross_entropy", "cross_entropy", banned=_LOSS),  # with perplexity
        Exercise("adamw", "AdamW", banned=_ADAM),
        Exercise("lr_at_step", "lr_at_step", banned=_SCHEDULERS),
        Exercise("clip_grad_norm", "clip_grad_norm_", banned=_CLIP),
        Exercise("train", "train"),
        Exercise("checkpoint", "save_checkpoint"),  # with load_checkpoint
    ),
    written=(
        WrittenQuestion(
            "written_weight_decay", 2,
            "Explain in your own words how AdamW's decoupled weight decay differs from adding weight_decay * p "
            "to the gradient before Adam's update, and why the difference matters.",
        ),
    ),
    # "gpt": the kit's GPT model to train; "training": PyTorch-built stand-ins for the loss, schedule,
    # clipping and data loaders, so that `train` is graded on the loop alone; "training_tools": optimizers,
    # parameter holders and file helpers (no exercise's solution, so a snapshot bundle may carry them).
    parts=("gpt", "training", "training_tools"),
)
