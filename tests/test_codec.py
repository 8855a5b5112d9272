"""The grader <-> worker wire format (``autograder/sandbox/codec.py``).

The grader decodes what a worker controlled by student code sends, so decoding must build only inert
data and turn anything malformed into ``CodecError``; never execute code, never crash otherwise.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from autograder.sandbox.codec import MAX_DEPTH, CodecError, Handle, decode, encode


def roundtrip(value, **kw):
    return decode(encode(value, **kw))


def message(header, buffers=()) -> bytes:
    """A hand-built wire message: <header length, buffer count>, JSON header, <length, bytes>*."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    parts = [struct.pack("<QQ", len(raw), len(buffers)), raw]
    for b in buffers:
        parts += [struct.pack("<Q", len(b)), b]
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    None, True, False, 0, -7, 2**70, 1.5, -0.0, 1e-300, "", "héllo\n\x00", [], (), {},
    [1, "a", None], (1, (2, (3,))), {"a": 1, "b": [1, 2, {"c": (None, False)}]}, [[[]]], ({"k": ()},),
])
def test_plain_values_round_trip(value):
    got = roundtrip(value)
    assert got == value and type(got) is type(value)
    if isinstance(value, (list, tuple)):
        assert [type(e) for e in got] == [type(e) for e in value]


def test_bool_stays_bool_and_tuple_stays_tuple():
    got = roundtrip({"t": (True, 1, 1.0), "l": [False, 0]})
    assert [type(e) for e in got["t"]] == [bool, int, float]
    assert type(got["l"]) is list and got["l"][0] is False
    assert list(roundtrip({"z": 1, "a": 2, "m": 3})) == ["z", "a", "m"]  # key order kept


def test_special_floats_round_trip():
    got = roundtrip([math.nan, math.inf, -math.inf])
    assert math.isnan(got[0]) and got[1] == math.inf and got[2] == -math.inf


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
                                   torch.int32, torch.int8, torch.uint8, torch.bool, torch.complex64])
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (5,), (2, 3, 4)])
def test_tensors_round_trip(dtype, shape):
    gen = torch.Generator().manual_seed(0)
    if dtype.is_floating_point or dtype.is_complex:
        t = (torch.randn(shape, generator=gen, dtype=torch.float64) * 100).to(dtype)
    elif dtype == torch.bool:
        t = torch.rand(shape, generator=gen) > 0.5
    else:
        t = torch.randint(0, 100, shape, generator=gen).to(dtype)
    got = roundtrip(t)
    assert isinstance(got, torch.Tensor)
    assert got.dtype == dtype and tuple(got.shape) == shape
    assert torch.equal(got, t)


def test_tensor_special_values_and_layouts():
    t = torch.tensor([[math.nan, math.inf], [-math.inf, -0.0]])
    got = roundtrip(t)
    assert torch.equal(torch.isnan(got), torch.isnan(t)) and got[0, 1] == math.inf and got[1, 0] == -math.inf
    assert math.copysign(1.0, got[1, 1].item()) == -1.0  # -0.0 keeps its sign: raw bytes, not text
    base = torch.arange(24.0).reshape(4, 6)
    for view in (base.T, base[:, ::2], base[1:3, 2:5], base.expand(2, 4, 6)):
        got = roundtrip(view)
        assert torch.equal(got, view) and got.shape == view.shape
    w = torch.ones(3, requires_grad=True) * 2
    got = roundtrip(w)
    assert not got.requires_grad and got.grad_fn is None and torch.equal(got, torch.full((3,), 2.0))
    bf = torch.tensor([1.0, 3.140625, -2.5e38, 1e-38], dtype=torch.bfloat16)
    assert torch.equal(roundtrip(bf), bf)


def test_decoded_tensors_do_not_share_the_message_buffer():
    data = bytearray(encode(torch.zeros(4)))
    got = decode(bytes(data))
    got += 1  # writable, and owning its memory
    assert torch.equal(decode(bytes(data)), torch.zeros(4))


@pytest.mark.parametrize("array", [
    np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1.5, -2.0]), np.array([True, False]),
    np.array(3, dtype=np.int64),
    np.zeros((0, 4), dtype=np.float64), np.arange(12.0).reshape(3, 4)[:, ::2],
])
def test_numpy_arrays_round_trip_as_numpy(array):
    got = roundtrip(array)
    assert isinstance(got, np.ndarray)
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)


def test_numpy_scalars_become_python_numbers():
    got = roundtrip([np.float32(1.5), np.int64(3), np.bool_(True)])
    assert got == [1.5, 3, True] and [type(v) for v in got] == [float, int, bool]


def test_handles_and_dtypes_round_trip():
    h = roundtrip(Handle(7, "MultiHeadAttention"))
    assert isinstance(h, Handle) and (h.id, h.type) == (7, "MultiHeadAttention")
    assert "MultiHeadAttention" in repr(h)
    got = roundtrip({"dtype": torch.bfloat16, "mods": [Handle(1, "Linear"), Handle(2, "Dropout")]})
    assert got["dtype"] is torch.bfloat16
    assert [(m.id, m.type) for m in got["mods"]] == [(1, "Linear"), (2, "Dropout")]


def test_on_unknown_turns_objects_into_handles():
    module = torch.nn.Linear(2, 2)
    seen = []

    def to_handle(obj):
        seen.append(obj)
        return Handle(len(seen), type(obj).__name__)

    got = roundtrip({"m": module, "out": (module.weight.detach(), object())}, on_unknown=to_handle)
    assert seen[0] is module and len(seen) == 2
    assert (got["m"].id, got["m"].type) == (1, "Linear")
    assert (got["out"][1].id, got["out"][1].type) == (2, "object")
    assert torch.equal(got["out"][0], module.weight.detach())


# ---------------------------------------------------------------------------------------------
# What encode refuses
# ---------------------------------------------------------------------------------------------


class Weird:
    pass


class MyList(list):
    pass


def test_bytes_and_non_string_keys_round_trip():
    # what a tokenizer exchanges: vocab {id: bytes} and merges [(bytes, bytes)]
    value = {0: b"\x00", 255: b"\xff", 256: b"<|eot|>", (1, 2): [(b"a", b"bc")], "k": bytearray(b"xy")}
    got = roundtrip(value)
    assert got == {0: b"\x00", 255: b"\xff", 256: b"<|eot|>", (1, 2): [(b"a", b"bc")], "k": b"xy"}
    assert isinstance(got[(1, 2)][0], tuple) and isinstance(got[0], bytes)


def test_unhashable_keys_are_rejected_on_decode():
    import json
    import struct

    header = json.dumps({"$d": [[[1, 2], 3]]}).encode()  # a list as a dict key
    with pytest.raises(CodecError):
        decode(struct.pack("<QQ", len(header), 0) + header)


@pytest.mark.parametrize("value", [
    Weird(), object(), {1, 2}, {Weird(): 1}, MyList([1]), 1 + 2j, len, Weird,
    torch.nn.Linear(2, 2), torch.zeros(3).to_sparse(),
])
def test_encode_rejects_values_without_a_wire_form(value):
    with pytest.raises(CodecError):
        encode(value)
    with pytest.raises(CodecError):
        encode({"nested": [value]})


def test_encode_rejects_too_deep_and_cyclic_values():
    deep: list = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(CodecError, match="too deeply"):
        encode(deep)
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(CodecError, match="too deeply"):
        encode(cyclic)
    ok: list = []
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    assert roundtrip(ok) == ok


# ---------------------------------------------------------------------------------------------
# Malformed messages: CodecError, nothing else, and nothing runs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"", b"\x00" * 3, struct.pack("<QQ", 2**62, 0) + b"{}", message(b"{not json"), message(b"\xff\xfe"),
    message({"$zz": 1}), message({"py/object": "os.system"}), message({"$x": 0, "dtype": "float32", "shape": [1]}),
    message({"$x": 0, "dtype": "object", "shape": [1]}, [b"\x00" * 8]),
    message({"$x": 0, "dtype": "float32", "shape": [3]}, [b"\x00" * 8]),  # 3 floats need 12 bytes
    message({"$x": 0, "dtype": "float32", "shape": [-1]}, [b"\x00" * 4]),
    message({"$x": 0, "dtype": "float32", "shape": [-1, -1]}, [b"\x00" * 4]),
    message({"$x": 0, "dtype": "float32", "shape": [2**32, 2**32]}, [b""]),
    message({"$x": "a", "dtype": "float32", "shape": [1]}, [b"\x00" * 4]),
    message({"$h": "not an id", "type": "X"}), message({"$h": 1}), message({"$dtype": "torch.float32"}),
    message({"$d": [["a"]]}), message({"$d": 5}), message({"$t": 5}),
    struct.pack("<QQ", 2, 1) + b"[]" + struct.pack("<Q", 100) + b"short",
    message(b"[" * 100_000 + b"]" * 100_000),
])
def test_malformed_messages_raise_codec_error(data):
    with pytest.raises(CodecError):
        decode(data)


def test_too_deep_nesting_is_refused():
    deep: object = 1
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(CodecError, match="too deeply"):
        decode(message(deep))
    tagged: object = 1
    for _ in range(MAX_DEPTH + 2):
        tagged = {"$t": [tagged]}
    with pytest.raises(CodecError, match="too deeply"):
        decode(message(tagged))


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_is_rejected_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(str(marker)))
    pickle.loads(pickle.dumps(_Exploit(str(tmp_path / "proof")))).close()  # the payload is live...
    assert (tmp_path / "proof").exists()
    for data in (payload, message(payload), message({"$x": 0, "dtype": "float32", "shape": [1]}, [payload])):
        with pytest.raises(CodecError):
            decode(data)
    # a pickle smuggled as a tensor buffer of the right size stays bytes in a tensor
    n = len(payload)
    got = decode(message({"$x": 0, "dtype": "uint8", "shape": [n]}, [payload]))
    assert isinstance(got, torch.Tensor) and bytes(got.tolist()) == payload
    assert not marker.exists()


def test_decode_builds_only_plain_types():
    data = encode({"a": [1, (2.0, "s")], "t": torch.ones(2), "n": np.ones(2), "h": Handle(1, "M"),
                   "d": torch.float32, "none": None})
    allowed = (type(None), bool, int, float, str, list, tuple, dict, torch.Tensor, np.ndarray, Handle, torch.dtype)

    def walk(v):
        assert type(v) in allowed, type(v)
        if isinstance(v, (list, tuple)):
            for e in v:
                walk(e)
        elif isinstance(v, dict):
            for e in v.values():
                walk(e)

    walk(decode(data))
    assert type(decode(data)["t"]) is torch.Tensor


def test_truncated_messages_never_decode_to_data():
    """Every proper prefix of a message is an error (not a shorter value)."""
    data = encode({"x": torch.arange(3.0), "n": [123456, "abc"]})
    for n in range(len(data)):
        with pytest.raises(CodecError):
            decode(data[:n])


def test_a_truncated_header_is_an_error():
    with pytest.raises(CodecError):
        decode(encode(123456)[:-1])


def test_trailing_bytes_are_an_error():
    with pytest.raises(CodecError):
        decode(encode([1, 2]) + b"junk")


def test_a_buffer_cannot_be_referenced_twice():
    ref = {"$x": 0, "dtype": "float32", "shape": [1024]}
    with pytest.raises(CodecError):
        decode(message([ref] * 1000, [b"\x00" * 4096]))  # 4 KiB sent, 4 MiB built; scale up at will


def test_decoding_does_not_touch_the_environment(tmp_path, monkeypatch):
    """Decoding a hostile-looking header only builds data: no imports, no files, no attribute lookups."""
    monkeypatch.chdir(tmp_path)
    header = {"$d": [["__class__", {"$t": ["os.system", "touch pwned"]}], ["__reduce__", "eval"]]}
    got = decode(message(header))
    assert got == {"__class__": ("os.system", "touch pwned"), "__reduce__": "eval"}
    assert os.listdir(tmp_path) == []
