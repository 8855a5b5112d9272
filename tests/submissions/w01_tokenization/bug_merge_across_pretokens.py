# BUG: training never pre-tokenizes: each piece between special tokens is one long byte sequence, so
# pairs are counted (and merged) across word boundaries, e.g. (b"e", b" ") or (b".", b" ").
# (It uses a linked list over the piece, so it is not slow despite working on the whole text.)
# Must lose points: train_bpe merges and vocab on any text with more than one pre-token per piece.
# Must keep full marks: encode / decode / encode_iterable on a given vocabulary (encode does use the
# regex), train_bpe on text that is a single pre-token per piece, ValueError, speed.
import heapq
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
    # Tokens are ints (ids into `names`) to keep the pair tuples cheap.
    names = [bytes([i]) for i in range(256)]
    ids = {b: i for i, b in enumerate(names)}
    toks = []  # token at each position of the text (-1 once merged into its left neighbour)
    nxt = []  # next live position in the same piece, or -1
    prv = []  # previous live position in the same piece, or -1
    stats = Counter()
    for chunk, is_special in split_specials(text, special_tokens):
        if is_special:
            continue
        start = len(toks)
        data = list(chunk.encode("utf-8"))
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

    # priority queue: highest count first, then the greatest pair; stale entries are skipped
    heap = [(-c, Desc(p, names)) for p, c in stats.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, d = heapq.heappop(heap)
        count = stats.get(d.pair, 0)
        if count != -neg:
            if count > 0:
                heapq.heappush(heap, (-count, d))
            continue
        a, b = best = d.pair
        merged = names[a] + names[b]
        merges.append((names[a], names[b]))
        vocab[len(vocab)] = merged
        if merged not in ids:
            ids[merged] = len(names)
            names.append(merged)
        new_tok = ids[merged]
        grown = set()
        for i in sorted(set(where.pop(best))):  # left to right: a a a -> aa a
            j = nxt[i]
            if toks[i] != a or j == -1 or toks[j] != b:
                continue  # out of date, or used up by the merge just left of it
            h, k = prv[i], nxt[j]
            stats[best] -= 1
            if h != -1:
                stats[toks[h], a] -= 1
            if k != -1:
                stats[b, toks[k]] -= 1
            toks[i], toks[j] = new_tok, -1
            nxt[i] = k
            if k != -1:
                prv[k] = i
                p = (new_tok, toks[k])
                stats[p] += 1
                where[p].append(i)
                grown.add(p)
            if h != -1:
                p = (toks[h], new_tok)
                stats[p] += 1
                where[p].append(h)
                grown.add(p)
        for p in grown:
            heapq.heappush(heap, (-stats[p], Desc(p, names)))
    return vocab, merges


class Desc:
    """Wraps a pair so that heapq (a min-heap) pops the greatest pair first among equal counts."""

    def __init__(self, pair, names):
        self.pair = pair
        self.key = (names[pair[0]], names[pair[1]])

    def __lt__(self, other):
        return self.key > other.key


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
