"""The student half of the llmkit engine: `llmkit check` and `check(...)`."""
