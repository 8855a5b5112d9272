"""Hidden tests, week 1 (byte-level BPE). 26 points.

Training is compared exactly with the reference (same merges, same order, same ids). Tokenizer tests
use vocabularies trained by the *reference*, so a bug in ``train_bpe`` costs points only in
``train_bpe``. The production-vocabulary test compares with tiktoken itself. Exact comparisons: there
is no float tolerance in this week.
"""

from __future__ import annotations

import functools
import random
import time
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given
from hypothesis import strategies as st

from autograder.compare import graded
from autograder.proxy import StudentAbort, StudentError, lines
from reference import bpe as ref

points = pytest.mark.points
DATA = Path(__file__).resolve().parents[3] / "assignments" / "w01_tokenization" / "data"
EOT = "<|endoftext|>"

# ------------------------------------------------------------------------------------------ inputs
ASCII = st.sampled_from(list("abcdefghij klmnop  \n\t.,!?'0123456789ABC-"))
WORLD = st.sampled_from(list("aeiou éüñçø 中文字日本 👋🚀 ٣ Ωλ\n'sllve .,") + ["'ll", "'ve", "  ", "\n\n", "123"])


def texts(alphabet, max_size=120):
    return st.lists(alphabet, min_size=0, max_size=max_size).map("".join)


def with_specials(alphabet, specials):
    return st.lists(st.one_of(alphabet, st.sampled_from(specials)), max_size=80).map("".join)


@functools.lru_cache(maxsize=None)
def corpus(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def trained_vocab():
    """The reference's vocabulary on the small shipped corpus: what the tokenizer tests encode with."""
    return ref.train_bpe(corpus("small.txt"), 256 + 1 + 300, [EOT])


@functools.lru_cache(maxsize=None)
def ref_tokenizer() -> ref.BPETokenizer:
    """The reference tokenizer on that vocabulary (built once: it caches pre-token encodings)."""
    return ref.BPETokenizer(*trained_vocab(), [EOT])


def norm_merges(merges, what: str) -> list[tuple[bytes, bytes]]:
    if not isinstance(merges, (list, tuple)):
        raise AssertionError(f"{what}: merges should be a list of (bytes, bytes) pairs, got {type(merges).__name__}")
    out = []
    for i, m in enumerate(merges):
        if not (isinstance(m, (list, tuple)) and len(m) == 2 and all(isinstance(b, bytes) for b in m)):
            raise AssertionError(f"{what}: merges[{i}] should be a pair of bytes, got {m!r:.80}")
        out.append((m[0], m[1]))
    return out


def assert_same_training(got, expected, what: str) -> None:
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise AssertionError(f"{what}: train_bpe should return (vocab, merges)")
    vocab, merges = got
    if not isinstance(vocab, dict):
        raise AssertionError(f"{what}: vocab should be a dict {{id: bytes}}, got {type(vocab).__name__}")
    merges = norm_merges(merges, what)
    want_vocab, want_merges = expected
    for i, (mine, theirs) in enumerate(zip(merges, want_merges)):
        if mine != theirs:
            raise AssertionError(f"{what}: merge #{i} differs (yours: {mine!r}); the first {i} merges match. "
                                 "Check the pair counts and the tie-break (greatest pair wins)")
    if len(merges) != len(want_merges):
        raise AssertionError(f"{what}: {len(merges)} merges, expected {len(want_merges)} "
                             "(stop only when the vocabulary is full or no pair is left)")
    if set(vocab) != set(want_vocab):
        wrong = sorted(set(vocab) ^ set(want_vocab))[:5]
        raise AssertionError(f"{what}: vocab ids differ (e.g. {wrong}); ids must be 0..{len(want_vocab) - 1}")
    bad = [i for i in sorted(want_vocab) if vocab[i] != want_vocab[i]]
    if bad:
        raise AssertionError(f"{what}: vocab[{bad[0]}] = {vocab[bad[0]]!r:.60} is not the expected token "
                             f"({len(bad)} ids wrong; layout: bytes 0-255, then special tokens, then merges)")


def assert_same_ids(got, expected: list[int], text: str, what: str = "encode") -> None:
    if not isinstance(got, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in got):
        raise AssertionError(f"{what} should return a list of ints, got {type(got).__name__}")
    if got != expected:
        k = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        raise AssertionError(f"{what}({text[:60]!r}{'...' if len(text) > 60 else ''}) differs from position {k} "
                             f"(you gave {len(got)} ids, expected {len(expected)})")


def tokenizer(student, vocab_and_merges, specials):
    vocab, merges = vocab_and_merges
    return student.BPETokenizer(vocab, merges, specials)


# ------------------------------------------------------------------------------------------ train_bpe
@points(3)
@pytest.mark.exercise("train_bpe")
@graded(max_examples=30)
@given(text=texts(ASCII, 150), extra=st.integers(0, 40))
def test_train_matches_reference_ascii(student, text, extra):
    """same merges, order and ids as the reference on ASCII text with spaces, digits, punctuation (exact)"""
    size = 256 + extra
    assert_same_training(student.train_bpe(text, size, []), ref.train_bpe(text, size, []), f"train_bpe(text, {size})")


@points(2)
@pytest.mark.exercise("train_bpe")
@graded(max_examples=25)
@given(text=texts(WORLD, 100), extra=st.integers(0, 40))
def test_train_matches_reference_unicode(student, text, extra):
    """the same on accented, CJK and emoji text, contractions and whitespace runs (exact)"""
    size = 256 + extra
    assert_same_training(student.train_bpe(text, size, []), ref.train_bpe(text, size, []), f"train_bpe(text, {size})")


@points(2)
@pytest.mark.exercise("train_bpe")
@graded(max_examples=25)
@given(text=with_specials(ASCII, [EOT, "<|pad|>"]), extra=st.integers(0, 30))
def test_train_special_tokens(student, text, extra):
    """special tokens get ids 256.., are never merged into, and split the training text (exact)"""
    specials = [EOT, "<|pad|>"]
    size = 258 + extra
    got = student.train_bpe(text, size, specials)
    assert_same_training(got, ref.train_bpe(text, size, specials), f"train_bpe(text, {size}, {specials})")


@points(2)
@pytest.mark.exercise("train_bpe")
def test_train_fixed_corpus(student):
    """300 merges on the shipped small corpus equal the reference's (exact)"""
    text = corpus("small.txt")
    assert_same_training(student.train_bpe(text, 256 + 1 + 300, [EOT]), trained_vocab(), "train_bpe(small.txt, 557)")


@points(1)
@pytest.mark.exercise("train_bpe")
def test_train_rejects_small_vocab(student):
    """vocab_size below 256 + number of special tokens raises ValueError; exactly that many does not"""
    assert_same_training(student.train_bpe("hello", 258, [EOT, "<|pad|>"]), ref.train_bpe("hello", 258, [EOT, "<|pad|>"]),
                         "train_bpe('hello', 258, two special tokens)")
    for size, specials in ((255, []), (257, [EOT, "<|pad|>"])):
        try:
            student.train_bpe("hello", size, specials)
        except StudentError as exc:
            if exc.type_name != "ValueError":
                raise AssertionError(f"vocab_size={size} with {len(specials)} special tokens raised {exc.type_name}, "
                                     "expected ValueError") from None
            continue
        raise AssertionError(f"vocab_size={size} with {len(specials)} special tokens was accepted; it must raise "
                             "ValueError (the base vocabulary alone is larger)")


@points(2)
@pytest.mark.exercise("train_bpe")
def test_train_speed(student):
    """1000 merges on the 300 KB corpus: correct, and at most 4x the reference's time in this run (+0.5 s)"""
    text = corpus("corpus.txt")
    size = 256 + 1 + 1000
    started = time.perf_counter()
    expected = ref.train_bpe(text, size, [EOT])
    reference_s = time.perf_counter() - started
    budget = 4 * reference_s + 0.5
    advice = ("Count pairs incrementally: after a merge, only pre-tokens containing the merged pair change, "
              "and equal pre-tokens need counting once")
    try:  # stopped soon after the budget: a slow submission must not make grading slow
        got, seconds = student.train_bpe.timed(text, size, [EOT], timeout=budget + 1.0)
    except StudentAbort as exc:
        if "timed out" not in exc.message:
            raise
        raise AssertionError(f"train_bpe did not finish within {budget + 1:.1f} s; the reference took "
                             f"{reference_s:.2f} s on this machine (limit: 4x + 0.5 s). {advice}") from None
    assert_same_training(got, expected, "train_bpe(corpus.txt, 1257)")
    if seconds > budget:
        raise AssertionError(f"train_bpe took {seconds:.1f} s, the reference {reference_s:.2f} s on this machine; the "
                             f"limit is 4x + 0.5 s = {budget:.1f} s. {advice}")


# ------------------------------------------------------------------------------------------ BPETokenizer
@points(3)
@pytest.mark.exercise("bpe_tokenizer")
@graded(max_examples=40)
@given(text=with_specials(WORLD, [EOT]))
def test_encode_matches_reference(student, text):
    """encode equals the reference (a vocabulary trained by the reference, with <|endoftext|>) (exact)"""
    tok = tokenizer(student, trained_vocab(), [EOT])
    expected = ref_tokenizer().encode(text)
    assert_same_ids(tok.method("encode")(text), expected, text)


@functools.lru_cache(maxsize=None)
def cl100k():
    vocab, specials = ref.cl100k_vocab()
    ordinary = {b: i for i, b in sorted(vocab.items(), reverse=True) if i not in specials.values()}
    encoding = tiktoken.Encoding("cl100k_offline", pat_str=ref.CL100K_PATTERN, mergeable_ranks=ordinary,
                                 special_tokens=specials)
    return vocab, specials, encoding


@points(2)
@pytest.mark.exercise("bpe_tokenizer")
@graded(max_examples=30)
@given(text=with_specials(WORLD, [EOT]))
def test_encode_production_vocabulary(student, text):
    """with OpenAI's cl100k_base vocabulary and pattern, encode equals tiktoken's (exact)"""
    vocab, specials, encoding = cl100k()
    tok = _cached_handle(student, "cl100k", lambda: student.BPETokenizer(vocab, [], list(specials), ref.CL100K_PATTERN))
    assert_same_ids(tok.method("encode")(text), encoding.encode(text, allowed_special="all"), text,
                    "encode with cl100k_base")


def _cached_handle(student, key, make):
    """Build a big remote object once per grading run (and again if the worker was restarted)."""
    cache = student.__dict__.setdefault("_suite_cache", {})
    cache_key = (key, student._sandbox.restarts)
    if cache_key not in cache:
        cache[cache_key] = make()
    return cache[cache_key]


@points(2)
@pytest.mark.exercise("bpe_tokenizer")
@graded(max_examples=30)
@given(text=texts(WORLD, 30), noise=st.lists(st.integers(0, 256 + 300), max_size=10), at=st.integers(0, 40))
def test_decode_matches_reference(student, text, noise, at):
    """decode joins the bytes and decodes UTF-8 with replacement characters, like tiktoken (exact)"""
    # single-byte ids split every multi-byte character across tokens; random ids add invalid UTF-8
    ids = list(text.encode("utf-8"))
    ids[at:at] = noise
    tok = tokenizer(student, trained_vocab(), [EOT])
    got = tok.method("decode")(ids)
    expected = ref_tokenizer().decode(ids)
    if got != expected:
        raise AssertionError(f"decode({ids[:12]}{'...' if len(ids) > 12 else ''}) returned {got!r:.60}, which is not "
                             "the UTF-8 decoding (errors='replace') of the joined bytes")


@points(1)
@pytest.mark.exercise("bpe_tokenizer")
@graded(max_examples=25)
@given(text=with_specials(WORLD, [EOT]))
def test_round_trip(student, text):
    """decode(encode(text)) == text"""
    tok = tokenizer(student, trained_vocab(), [EOT])
    back = tok.method("decode")(tok.method("encode")(text))
    if back != text:
        raise AssertionError(f"decode(encode({text[:40]!r})) gave {back[:40]!r}")


@points(1)
@pytest.mark.exercise("bpe_tokenizer")
def test_special_tokens_longest_first(student):
    """overlapping special tokens match longest first; special tokens are never split"""
    vocab, merges = trained_vocab()
    specials = ["<|a|>", "<|a|>b", EOT]
    text = f"x<|a|>by<|a|>{EOT}<|a|>b"
    expected = ref.BPETokenizer(vocab, merges, specials).encode(text)
    assert_same_ids(tokenizer(student, (vocab, merges), specials).method("encode")(text), expected, text)


@points(2)
@pytest.mark.exercise("bpe_tokenizer")
@graded(max_examples=25)
@given(text=with_specials(WORLD, [EOT]), seed=st.integers(0, 2**16))
def test_encode_iterable_equals_encode(student, text, seed):
    """encode_iterable over ANY split of the text into chunks gives encode(text) (exact)"""
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(0, 8))))
    chunks = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    tok = tokenizer(student, trained_vocab(), [EOT])
    expected = ref_tokenizer().encode(text)
    got = tok.method("encode_iterable").iterate(lines(chunks), mode="list")["items"]
    assert_same_ids(got, expected, text, f"encode_iterable(chunks of {text[:30]!r})")


def _big_lines():
    text = corpus("corpus.txt")
    return (text * 8).splitlines(keepends=True)  # ~2.4 MB, ~50k lines


@points(1)
@pytest.mark.exercise("bpe_tokenizer")
def test_encode_iterable_is_lazy(student):
    """encode_iterable yields its first id before reading the whole input"""
    tok = tokenizer(student, trained_vocab(), [EOT])
    chunks = _big_lines()
    out = tok.method("encode_iterable").iterate(lines(chunks), mode="first")
    if out["first"] != ref_tokenizer().encode("".join(chunks[:50]))[0]:
        raise AssertionError(f"the first id from encode_iterable is {out['first']!r}, not the first id of encode(text)")
    if out["pulled"] >= len(chunks):
        raise AssertionError(f"encode_iterable read all {len(chunks)} lines before yielding its first id; "
                             "it must be a generator that encodes as it reads")


@points(1)
@pytest.mark.exercise("bpe_tokenizer")
def test_encode_iterable_memory(student):
    """on a 2.4 MB input, encode_iterable gives encode's ids while peak memory grows by under 64 MB"""
    tok = tokenizer(student, trained_vocab(), [EOT])
    chunks = _big_lines()
    out = tok.method("encode_iterable").iterate(lines(chunks), mode="digest", timeout=120.0)
    import hashlib

    digest = hashlib.sha256()
    count = 0
    for i in ref_tokenizer().encode_iterable(iter(chunks)):
        digest.update(repr(i).encode() + b",")
        count += 1
    if (out["count"], out["sha256"]) != (count, digest.hexdigest()):
        raise AssertionError(f"encode_iterable on the 2.4 MB input gave {out['count']} ids that differ from encode's")
    if out["peak_growth_bytes"] > 64 << 20:
        raise AssertionError(f"peak memory grew by {out['peak_growth_bytes'] >> 20} MB while encoding; keep only a "
                             "small buffer instead of the whole text or all ids")


@points(1)
@pytest.mark.exercise("bpe_tokenizer")
def test_unknown_special_token_is_added(student):
    """a special token missing from the vocabulary gets id max(vocab) + 1"""
    vocab, merges = trained_vocab()
    text = "hi<|new|>there"
    expected = ref.BPETokenizer(vocab, merges, [EOT, "<|new|>"]).encode(text)
    assert_same_ids(tokenizer(student, (vocab, merges), [EOT, "<|new|>"]).method("encode")(text), expected, text)
