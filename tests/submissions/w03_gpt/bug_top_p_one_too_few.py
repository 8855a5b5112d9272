# builds on: correct_alternative
# Keeps the tokens whose cumulative probability stays <= p: drops the token that crosses p (one too few).
def top_p_filter(logits, p):
    if not (0 < p <= 1):
        raise ValueError("p must be in (0, 1]")
    probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)
    remove_sorted = probs.cumsum(dim=-1) > p
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))
