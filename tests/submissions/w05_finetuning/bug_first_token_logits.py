# builds on: correct_alternative
# BUG: the class scores are read at the first position, which has seen one token, not the last.
# Must lose: classification_logits (0 / 5). Must keep: classification_accuracy, which calls this
# classification_logits but is graded with the kit's correct one, and everything else (38 / 43).
def classification_logits(model, input_ids):
    return model(input_ids)[:, 0, :]  # BUG: [:, -1, :]
