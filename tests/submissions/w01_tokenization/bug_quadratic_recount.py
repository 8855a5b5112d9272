# BUG (speed only): every merge recounts all pairs over ALL pre-token occurrences of the corpus (one
# flat list, about 370k entries for the shipped corpus) instead of counting each distinct pre-token
# once with its frequency. Results are correct and small inputs are fast, but on the ~300 KB corpus
# with 1000 merges it is ~200x slower than the reference (~34 s on the 2-core dev machine).
# Must lose points: the train_bpe speed test only.
# Must keep full marks: everything else (train_bpe results, encode, decode, encode_iterable,
# ValueError).
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
    for s in special_tokens:
        vocab[len(vocab)] = s.encode("utf-8")
    merges = []

    # All pre-tokens of the text, in order, as one flat list of byte tokens; None separates
    # pre-tokens so that no pair crosses a boundary.
    flat = []
    for chunk, is_special in split_specials(text, special_tokens):
        if is_special:
            continue
        for word in regex.findall(GPT2_PATTERN, chunk):
            flat.extend(bytes([b]) for b in word.encode("utf-8"))
            flat.append(None)

    while len(vocab) < vocab_size:
        # BUG (slow): a full recount over every occurrence, every merge
        stats = Counter(zip(flat, flat[1:]))
        for p in [p for p in stats if p[0] is None or p[1] is None]:
            del stats[p]
        if not stats:
            break
        best = max(stats, key=lambda p: (stats[p], p))
        new_tok = best[0] + best[1]
        merges.append(best)
        vocab[len(vocab)] = new_tok
        # replace occurrences left to right, jumping between places where best[0] occurs
        out = []
        i = 0
        n = len(flat)
        while True:
            try:
                j = flat.index(best[0], i)
            except ValueError:
                out.extend(flat[i:])
                break
            out.extend(flat[i:j])
            if j + 1 < n and flat[j + 1] == best[1]:
                out.append(new_tok)
                i = j + 2
            else:
                out.append(flat[j])
                i = j + 1
        flat = out
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
