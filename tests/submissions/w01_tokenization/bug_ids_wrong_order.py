# BUG: merge i gets id 256 + i, right after the bytes, and the special tokens go at the very end
# (ids 256 + len(merges) + j) instead of 256..256+S-1 with merges after them.
# Must lose points: train_bpe's vocab layout whenever special_tokens is non-empty (vocab differs from
# the reference; ids of specials and merges are shifted), and any test that encodes with the
# student's own trained vocab and compares ids.
# Must keep full marks: train_bpe's merges list (identical), train_bpe without special tokens
# (identical vocab), encode / decode / encode_iterable on a given vocabulary, ValueError, speed.
from collections import Counter, defaultdict

import regex

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def split_specials(text, specials):
    """[(chunk, is_special)]; at each position the longest special token wins."""
    specials = sorted((s for s in specials if s), key=len, reverse=True)
    if not specials:
        return [(text, False)] if text else []
    out = []
    pattern = "|".join(regex.escape(s) for s in specials)
    last = 0
    for m in regex.finditer(pattern, text):
        if m.start() > last:
            out.append((text[last:m.start()], False))
        out.append((m.group(), True))
        last = m.end()
    if last < len(text):
        out.append((text[last:], False))
    return out


def train_bpe(text, vocab_size, special_tokens=[]):
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(f"vocab_size {vocab_size} < {256 + len(special_tokens)} (256 bytes + special tokens)")
    vocab = {i: bytes([i]) for i in range(256)}
    merges = []

    freq = Counter()
    for chunk, is_special in split_specials(text, special_tokens):
        if not is_special:
            for tok in regex.findall(GPT2_PATTERN, chunk):
                freq[tok] += 1

    splits = {w: [bytes([b]) for b in w.encode("utf-8")] for w in freq}
    stats = Counter()
    index = defaultdict(set)  # pair -> words that (may) contain it
    for w, toks in splits.items():
        for p in zip(toks, toks[1:]):
            stats[p] += freq[w]
            index[p].add(w)

    while len(vocab) < vocab_size - len(special_tokens):
        if not stats:
            break
        top = max(stats.values())
        best = max(p for p, c in stats.items() if c == top)  # ties: the greatest pair
        new_tok = best[0] + best[1]
        merges.append(best)
        vocab[len(vocab)] = new_tok
        for w in list(index[best]):
            old = splits[w]
            new = []
            i = 0
            while i < len(old):
                if i + 1 < len(old) and (old[i], old[i + 1]) == best:
                    new.append(new_tok)
                    i += 2
                else:
                    new.append(old[i])
                    i += 1
            for p in zip(old, old[1:]):
                stats[p] -= freq[w]
                if stats[p] <= 0:
                    del stats[p]
            for p in zip(new, new[1:]):
                stats[p] += freq[w]
                index[p].add(w)
            splits[w] = new
        del index[best]
    for s in special_tokens:  # BUG: specials belong at 256.., before the merges
        vocab[len(vocab)] = s.encode("utf-8")
    return vocab, merges


class BPETokenizer:
    def __init__(self, vocab, merges, special_tokens=None, pattern=GPT2_PATTERN):
        self.vocab = dict(vocab)
        self.merges = list(merges)
        self.special_tokens = list(special_tokens or [])
        self.pattern = regex.compile(pattern)
        by_bytes = {}
        for i in sorted(self.vocab):
            by_bytes.setdefault(self.vocab[i], i)
        self.special_ids = {}
        for s in self.special_tokens:
            b = s.encode("utf-8")
            if b not in by_bytes:
                by_bytes[b] = max(self.vocab) + 1
                self.vocab[by_bytes[b]] = b
            self.special_ids[s] = by_bytes[b]
        taken = set(self.special_ids.values())
        self.ranks = {}
        for i in sorted(self.vocab):
            if i not in taken and self.vocab[i] not in self.ranks:
                self.ranks[self.vocab[i]] = i
        self.cache = {}

    def _encode_word(self, word):
        if word in self.cache:
            return self.cache[word]
        b = word.encode("utf-8")
        if b in self.ranks:
            ids = [self.ranks[b]]
        else:
            parts = [bytes([x]) for x in b]
            while True:
                best_i, best_rank = None, None
                for i in range(len(parts) - 1):
                    r = self.ranks.get(parts[i] + parts[i + 1])
                    if r is not None and (best_rank is None or r < best_rank):
                        best_i, best_rank = i, r
                if best_i is None:
                    break
                parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
            ids = [self.ranks[p] for p in parts]
        self.cache[word] = ids
        return ids

    def _encode_plain(self, text):
        ids = []
        for word in self.pattern.findall(text):
            ids.extend(self._encode_word(word))
        return ids

    def encode(self, text):
        ids = []
        for piece, is_special in split_specials(text, self.special_tokens):
            if is_special:
                ids.append(self.special_ids[piece])
            else:
                ids.extend(self._encode_plain(piece))
        return ids

    def encode_iterable(self, chunks):
        # Cut the buffer at a space between two letters: every pattern starts a new pre-token there.
        # Stay away from the end so a special token can't start before the cut and run past the end.
        longest = max((len(s) for s in self.special_tokens), default=0)
        buf = ""
        for chunk in chunks:
            buf += chunk
            spans = []
            pos = 0
            for piece, is_special in split_specials(buf, self.special_tokens):
                if is_special:
                    spans.append((pos, pos + len(piece)))
                pos += len(piece)
            cut = 0
            for i in range(min(len(buf) - 2, len(buf) - longest), 0, -1):
                if buf[i] == " " and buf[i - 1].isalpha() and buf[i + 1].isalpha():
                    if all(not (a < i < b) for a, b in spans):
                        cut = i
                        break
            if cut:
                yield from self.encode(buf[:cut])
                buf = buf[cut:]
        yield from self.encode(buf)

    def decode(self, ids):
        data = b"".join(self.vocab[i] for i in ids)
        return data.decode("utf-8", errors="replace")
