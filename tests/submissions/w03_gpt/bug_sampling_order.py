# builds on: correct_alternative
# top-p applied before the temperature: the nucleus is chosen from the wrong distribution.
def _choose(logits, temperature, top_k, top_p, generator):
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator)
