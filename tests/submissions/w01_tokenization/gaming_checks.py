# Gaming the checks: train_bpe always raises ValueError (hoping for the "small vocab_size" point) and
# encode_iterable yields an id before reading anything (hoping for the laziness point). Nothing is
# implemented. Must score 0: a valid vocab_size must train, and the first id must be encode's first id.
def train_bpe(text, vocab_size, special_tokens=[]):
    raise ValueError(f"vocab_size {vocab_size} is too small")


class BPETokenizer:
    def __init__(self, vocab, merges, special_tokens=None, pattern=None):
        self.vocab = vocab

    def encode_iterable(self, chunks):
        yield 0
        for _ in chunks:
            pass
