# builds on: correct_alternative
# Chunks start only where a full chunk fits, so the words after the last full chunk are dropped.
def chunk_text(text, chunk_size, overlap):
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if not 0 <= overlap < chunk_size:
        raise ValueError(f"need 0 <= overlap < chunk_size, got overlap={overlap}, chunk_size={chunk_size}")
    words = text.split()
    step = chunk_size - overlap
    chunks = []
    for start in range(0, len(words) - chunk_size + 1, step):
        chunks.append(" ".join(words[start:start + chunk_size]))
    if not chunks and words:
        chunks.append(" ".join(words))
    return chunks
