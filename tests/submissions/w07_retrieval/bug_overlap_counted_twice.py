# builds on: correct_alternative
# The overlap is subtracted on both sides of a chunk, so chunks advance by chunk_size - 2 * overlap.
def chunk_text(text, chunk_size, overlap):
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if not 0 <= overlap < chunk_size:
        raise ValueError(f"need 0 <= overlap < chunk_size, got overlap={overlap}, chunk_size={chunk_size}")
    words = text.split()
    step = max(1, chunk_size - 2 * overlap)
    chunks = []
    for start in range(0, len(words), step):
        chunks.append(" ".join(words[start:start + chunk_size]))
        if start + chunk_size >= len(words):  # this chunk reached the last word
            break
    return chunks
