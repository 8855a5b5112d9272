# builds on: correct_alternative
# "generate_cached" that recomputes everything: right tokens, but no cache.
def generate_cached(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, top_p=None, eos_id=None,
                    generator=None):
    return generate(model, idx, max_new_tokens, context_size, temperature, top_k, top_p, eos_id, generator)
