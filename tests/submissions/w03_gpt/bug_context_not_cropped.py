# builds on: correct_alternative
# The whole sequence goes to the model at every step: fine until it outgrows the context.
def generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, top_p=None, eos_id=None,
             generator=None):
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx)[:, -1, :]
        nxt = _choose(logits, temperature, top_k, top_p, generator)
        if eos_id is not None and nxt.item() == eos_id:
            break
        idx = torch.cat((idx, nxt), dim=1)
    return idx
