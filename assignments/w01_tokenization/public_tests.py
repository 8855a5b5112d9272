"""Public tests for week 1 (tokenization): small, instant checks shipped with the notebook.

They use properties and tiny examples whose answers were worked out by hand; there is no reference
implementation here. The hidden tests check the same contract much more thoroughly, on random texts.
"""

from autograder.student.public import public_test

EOT = "<|endoftext|>"


def _bytes_vocab():
    return {i: bytes([i]) for i in range(256)}


def _vocab_with(merges):
    """The id layout of train_bpe without special tokens: bytes, then one id per merge."""
    vocab = _bytes_vocab()
    for i, (a, b) in enumerate(merges):
        vocab[256 + i] = a + b
    return vocab


def _train(ns, *args):
    out = ns.train_bpe(*args)
    assert isinstance(out, tuple) and len(out) == 2, "train_bpe should return a tuple (vocab, merges)"
    vocab, merges = out
    assert isinstance(vocab, dict), f"vocab should be a dict id -> bytes, got {type(vocab).__name__}"
    assert isinstance(merges, list), f"merges should be a list of (bytes, bytes) pairs, got {type(merges).__name__}"
    return out


def _ids(value, what):
    assert isinstance(value, list), f"{what} should return a list of ints, got {type(value).__name__}"
    assert all(isinstance(i, int) for i in value), f"{what} should return ints, got {value!r}"
    return value


# ------------------------------------------------------------------------------------------------
# Exercise 1: train_bpe
# ------------------------------------------------------------------------------------------------


@public_test("train_bpe")
def id_layout(ns):
    """ids: 0..255 bytes, then the special tokens in order, then one id per merge"""
    specials = [EOT, "<|pad|>"]
    vocab, merges = _train(ns, "hug hug hugs pug" + EOT + "pun bun hug", 256 + 2 + 5, specials)
    assert specials == [EOT, "<|pad|>"], "train_bpe must not modify the special_tokens list it is given"
    assert sorted(vocab) == list(range(len(vocab))), (
        f"the ids should be 0, 1, ..., {len(vocab) - 1} without gaps; got ids {sorted(vocab)[250:]} from 250 on"
    )
    assert len(vocab) == 256 + 2 + 5 and len(merges) == 5, (
        f"asked for 256 + 2 + 5 tokens: expected 263 vocab entries and 5 merges, got {len(vocab)} and {len(merges)}"
    )
    for i in range(256):
        assert vocab[i] == bytes([i]), f"vocab[{i}] should be bytes([{i}]) = {bytes([i])!r}, got {vocab[i]!r}"
    assert vocab[256] == EOT.encode("utf-8") and vocab[257] == b"<|pad|>", (
        f"ids 256 and 257 should be the special tokens in list order, got {vocab[256]!r} and {vocab[257]!r}"
    )
    for i, (a, b) in enumerate(merges):
        assert isinstance(a, bytes) and isinstance(b, bytes), f"merges[{i}] should be a pair of bytes, got {(a, b)!r}"
        assert vocab[258 + i] == a + b, (
            f"vocab[258 + {i}] should be merges[{i}][0] + merges[{i}][1] = {a + b!r}, got {vocab[258 + i]!r}"
        )
    assert merges[0] == (b"u", b"g"), (
        f"the first merge should be (b'u', b'g'), seen 5 times; got {merges[0]!r}"
    )


@public_test("train_bpe")
def tie_break_greatest_pair(ns):
    """ties go to the lexicographically greatest pair: (b"b", b"c") beats (b"a", b"b")"""
    # pre-tokens "abc", " abc", " abc": (a, b) and (b, c) are both seen 3 times, (" ", a) twice
    vocab, merges = _train(ns, "abc abc abc", 257)
    assert merges == [(b"b", b"c")], (
        f"(b'a', b'b') and (b'b', b'c') are both seen 3 times; the greatest pair, (b'b', b'c'), should win. "
        f"Got merges {merges!r}"
    )
    assert vocab[256] == b"bc", f"vocab[256] should be b'bc', got {vocab[256]!r}"


@public_test("train_bpe")
def too_small_raises(ns):
    """vocab_size < 256 + number of special tokens raises ValueError"""
    for args in (("hello", 255), ("hello", 256, [EOT]), ("hello", 257, [EOT, "<|pad|>"])):
        try:
            ns.train_bpe(*args)
        except ValueError:
            continue
        raise AssertionError(f"train_bpe{args!r} should raise ValueError: the vocabulary cannot hold the "
                             "256 bytes and the special tokens")
    vocab, merges = _train(ns, "hello", 257, [EOT])
    assert len(vocab) == 257 and merges == [], (
        f"train_bpe('hello', 257, [EOT]) has room for no merge: expected 257 entries and no merges, got "
        f"{len(vocab)} entries and merges {merges!r}"
    )


@public_test("train_bpe")
def worked_example_by_hand(ns):
    """the first three merges of "low lower lowest newer wider" (section 5)"""
    vocab, merges = _train(ns, "low lower lowest newer wider", 256 + 3)
    expected = [(b"w", b"e"), (b"l", b"o"), (b"we", b"r")]
    assert merges == expected, (
        f"expected {expected!r} (ties: the greatest pair wins; only pairs inside a pre-token count), "
        f"got {merges!r}"
    )
    assert [vocab[256], vocab[257], vocab[258]] == [b"we", b"lo", b"wer"], (
        f"ids 256, 257, 258 should be b'we', b'lo', b'wer', got {[vocab.get(i) for i in (256, 257, 258)]!r}"
    )


@public_test("train_bpe")
def left_to_right_stop_and_boundaries(ns):
    """a a a merges as (aa) a; training stops when no pair is left; no pair crosses a special token"""
    vocab, merges = _train(ns, "aaa", 1000)
    assert merges == [(b"a", b"a"), (b"aa", b"a")], (
        f"'aaa': merge (a, a) left to right gives 'aa a', then (aa, a) gives 'aaa' and no pair is left. "
        f"Expected [(b'a', b'a'), (b'aa', b'a')], got {merges!r}"
    )
    assert len(vocab) == 258, f"training should stop when no pair is left (258 entries), got {len(vocab)}"
    vocab, merges = _train(ns, "ab" + EOT + "ab", 1000, [EOT])
    assert merges == [(b"a", b"b")], (
        f"'ab<|endoftext|>ab' with the special token: only (a, b) may be merged, the special token is "
        f"removed and is a hard boundary; got {merges!r}"
    )


# ------------------------------------------------------------------------------------------------
# Exercise 2: BPETokenizer
# ------------------------------------------------------------------------------------------------

# " the" as in a trained GPT-style vocabulary: (" ", t) -> 256, (h, e) -> 257, (" t", he) -> 258
THE_MERGES = [(b" ", b"t"), (b"h", b"e"), (b" t", b"he")]


@public_test("bpe_tokenizer")
def encode_by_hand_and_round_trip(ns):
    """hand-computed ids for a tiny vocabulary, and decode(encode(s)) == s, emoji included"""
    tok = ns.BPETokenizer(_vocab_with(THE_MERGES), THE_MERGES)
    ids = _ids(tok.encode("the the"), "encode")
    assert ids == [116, 257, 258], (
        f"'the the' pre-tokenizes as 'the', ' the': 'the' -> t (116) + he (257), ' the' is token 258; "
        f"expected [116, 257, 258], got {ids}"
    )
    ids = _ids(tok.encode("é"), "encode")
    assert ids == [195, 169], f"'é' is the bytes c3 a9 and should encode as [195, 169], got {ids}"
    assert tok.encode("") == [], f"encode('') should be [], got {tok.encode('')!r}"
    for s in ["héllo 👋", "the 中文 text\n\n  with   spaces\t", "I'm 42!", EOT]:
        ids = _ids(tok.encode(s), "encode")
        back = tok.decode(ids)
        assert back == s, f"decode(encode({s!r})) gave {back!r}"


@public_test("bpe_tokenizer")
def lowest_id_rule_not_merge_replay(ns):
    """merges (b, c), (a, b), (ab, c): "abc" encodes as [258], not as the replayed [97, 256]"""
    merges = [(b"b", b"c"), (b"a", b"b"), (b"ab", b"c")]
    tok = ns.BPETokenizer(_vocab_with(merges), merges)
    ids = _ids(tok.encode("abc"), "encode")
    assert ids == [258], (
        f"'abc' is itself an ordinary token (id 258), so encode('abc') should be [258]; got {ids}. "
        "Encode with tiktoken's rule (lowest id first, whole pre-token first), not by replaying the merges."
    )
    ids = _ids(tok.encode("xabcd"), "encode")
    assert ids == [120, 258, 100], (
        f"'xabcd': bc (256) has the lowest id, then a + bc = abc (258) is a token; expected [120, 258, 100], "
        f"got {ids}"
    )


@public_test("bpe_tokenizer")
def special_tokens_stay_whole(ns):
    """special tokens are one id each (added after max(vocab) if missing); the longest one wins"""
    vocab = _vocab_with(THE_MERGES)
    original = dict(vocab)
    tok = ns.BPETokenizer(vocab, THE_MERGES, special_tokens=[EOT, "<s>", "<s><s>"])
    assert vocab == original, "BPETokenizer must not modify the vocab dict it is given: copy it"
    ids = _ids(tok.encode("the" + EOT + "the"), "encode")
    assert ids == [116, 257, 259, 116, 257], (
        f"<|endoftext|> is missing from vocab, so it gets id max(vocab) + 1 = 259; expected "
        f"[116, 257, 259, 116, 257], got {ids}"
    )
    ids = _ids(tok.encode("<s><s><s>"), "encode")
    assert ids == [261, 260], (
        f"'<s>' -> 260 and '<s><s>' -> 261 (added in list order); at each position the longest special token "
        f"wins, so '<s><s><s>' is [261, 260]; got {ids}"
    )
    assert tok.decode([259]) == EOT, f"decode([259]) should be {EOT!r}, got {tok.decode([259])!r}"
    plain = ns.BPETokenizer(_vocab_with(THE_MERGES), THE_MERGES)
    ids = _ids(plain.encode(EOT), "encode")
    assert len(ids) > 1 and plain.decode(ids) == EOT, (
        f"without special_tokens, {EOT!r} is ordinary text and should be encoded as several tokens; got {ids}"
    )
    in_vocab = _bytes_vocab() | {256: EOT.encode("utf-8")}
    ids = _ids(ns.BPETokenizer(in_vocab, [], special_tokens=[EOT]).encode("a" + EOT), "encode")
    assert ids == [97, 256], f"a special token already in vocab keeps its id (256): expected [97, 256], got {ids}"


@public_test("bpe_tokenizer")
def decode_replaces_broken_utf8(ns):
    """decoding half of a multi-byte character gives "\\ufffd" instead of raising"""
    tok = ns.BPETokenizer(_bytes_vocab(), [])
    assert tok.decode([195, 169]) == "é", f"decode([195, 169]) should be 'é', got {tok.decode([195, 169])!r}"
    got = tok.decode([195])
    assert got == "\ufffd", f"decode([195]) is an incomplete character and should be '\\ufffd', got {got!r}"
    got = tok.decode([104, 105, 0xF0, 0x9F])
    assert got == "hi\ufffd", f"decode of b'hi\\xf0\\x9f' should be 'hi\\ufffd' (errors='replace'), got {got!r}"


@public_test("bpe_tokenizer")
def encode_iterable_matches_encode(ns):
    """encode_iterable gives the ids of encode for any split into chunks, and is lazy"""
    tok = ns.BPETokenizer(_vocab_with(THE_MERGES), THE_MERGES, special_tokens=[EOT])
    text = "the cat's hat   the 👋\n\nthe" + EOT + "other the"
    expected = tok.encode(text)
    splits = [
        [text],
        text.splitlines(keepends=True),
        list(text),  # one character at a time
        ["the c", "at's hat ", "  t", "he 👋\n", "\nthe<|endo", "ftext|", ">other th", "e"],
    ]
    for chunks in splits:
        got = list(tok.encode_iterable(iter(chunks)))
        assert got == expected, (
            f"encode_iterable({chunks!r}) should equal encode of the joined text:\n  expected {expected}\n"
            f"  got      {got}"
        )

    def endless():
        for _ in range(1000):
            yield "the hat "
        raise AssertionError("encode_iterable read 1000 chunks without yielding an id: it must be lazy, "
                             "yielding ids before the whole input has been read")

    first = next(iter(tok.encode_iterable(endless())))
    assert first == 116, f"the first id of 'the hat the hat ...' should be 116 ('t'), got {first!r}"
