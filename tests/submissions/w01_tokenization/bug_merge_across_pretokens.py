# BUG: training never pre-tokenizes: each piece between special tokens is one long byte sequence, so
# pairs are counted (and merged) across word boundaries, e.g. (b"e", b" ") or (b".", b" ").
# It keeps a linked list over the whole text and updates counts only where a merge happens, but picks
# the best pair with max() over every pair ever seen, so it is also slow on the corpus (~20x the
# reference, several seconds: far past 4x + 0.5 s on any plausible machine).
# Must lose points: train_bpe merges and vocab on any text with more than one pre-token per piece,
# and the train_bpe speed test.
# Must keep full marks: encode / decode / encode_iterable on a given vocabulary (encode does use the
# regex), train_bpe on text with one pre-token per piece (e.g. "aaa", "x<|s|>y"), ValueError.
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

    # BUG: no regex pre-tokenization; each piece is a single sequence of bytes.
    # A linked list over the text so that a merge only touches the places where the pair occurs.
    toks = []  # token at each position of the text (None once merged into its left neighbour)
    nxt = []  # next live position in the same piece, or -1
    prv = []  # previous live position in the same piece, or -1
    stats = Counter()
    for chunk, is_special in split_specials(text, special_tokens):
        if is_special:
            continue
        start = len(toks)
        data = [bytes([b]) for b in chunk.encode("utf-8")]
        toks.extend(data)
        nxt.extend(range(start + 1, start + len(data) + 1))
        nxt[-1] = -1
        prv.append(-1)
        prv.extend(range(start, start + len(data) - 1))
        stats.update(zip(data, data[1:]))
    where = defaultdict(list)  # pair -> positions of its left token (may be out of date)
    for i, j in enumerate(nxt):
        if j != -1:
            where[toks[i], toks[j]].append(i)

    def drop(pair):
        stats[pair] -= 1

    while len(vocab) < vocab_size:
        best = max(stats, key=lambda p: (stats[p], p), default=None)
        if best is None or stats[best] <= 0:
            break  # no pair left (pairs that died stay in stats with count 0)
        a, b = best
        new_tok = a + b
        merges.append(best)
        vocab[len(vocab)] = new_tok
        for i in sorted(set(where.pop(best))):  # left to right: a a a -> aa a
            j = nxt[i]
            if toks[i] != a or j == -1 or toks[j] != b:
                continue  # out of date, or used up by the merge just left of it
            h, k = prv[i], nxt[j]
            drop(best)
            if h != -1:
                drop((toks[h], a))
            if k != -1:
                drop((b, toks[k]))
            toks[i], toks[j] = new_tok, None
            nxt[i] = k
            if k != -1:
                prv[k] = i
                stats[new_tok, toks[k]] += 1
                where[new_tok, toks[k]].append(i)
            if h != -1:
                stats[toks[h], new_tok] += 1
                where[toks[h], new_tok].append(h)
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
