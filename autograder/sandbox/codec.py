"""A data-only wire format for the grader <-> worker pipe.

Why not pickle: unpickling runs code, and the worker is controlled by student code, so anything the
grader decodes must be inert data. A message is a JSON header describing the structure plus raw tensor
buffers; decoding builds only None/bool/int/float/str/list/tuple/dict/plain tensors and ``Handle``s.

This file is also run as a sibling module of ``worker.py`` (no package imports), so it imports only
the standard library, numpy and torch.
"""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import torch

MAX_DEPTH = 32

_DTYPES = {
    "float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
    "bfloat16": torch.bfloat16, "int64": torch.int64, "int32": torch.int32, "int16": torch.int16,
    "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
    "complex64": torch.complex64, "complex128": torch.complex128,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


class CodecError(ValueError):
    pass


class Handle:
    """A reference to an object that stays inside the worker (an ``nn.Module``, say)."""

    __slots__ = ("id", "type")

    def __init__(self, id: int, type: str):
        self.id, self.type = int(id), str(type)

    def __repr__(self):
        return f"<{self.type} in the student's worker>"


def encode(obj, on_unknown=None) -> bytes:
    """Serialise ``obj``. ``on_unknown(obj) -> Handle`` handles values with no wire form (worker side)."""
    buffers: list[bytes] = []

    def enc(x, depth):
        if depth > MAX_DEPTH:
            raise CodecError("value nested too deeply")
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            return float(x)
        if isinstance(x, (bytes, bytearray)):
            return {"$b": base64.b64encode(bytes(x)).decode("ascii")}
        if isinstance(x, torch.Tensor):
            return enc_tensor(x, False)
        if isinstance(x, np.ndarray):
            try:
                t = torch.from_numpy(np.ascontiguousarray(x).reshape(x.shape))  # keeps 0-dim arrays 0-dim
            except TypeError:
                raise CodecError(f"cannot send a numpy array of dtype {x.dtype}") from None
            return enc_tensor(t, True)
        if isinstance(x, np.generic):
            return enc(x.item(), depth)
        if isinstance(x, tuple) and type(x) is tuple:
            return {"$t": [enc(e, depth + 1) for e in x]}
        if isinstance(x, list) and type(x) is list:
            return [enc(e, depth + 1) for e in x]
        if isinstance(x, dict) and type(x) is dict:
            return {"$d": [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in x.items()]}
        if isinstance(x, torch.dtype) and x in _NAMES:
            return {"$dtype": _NAMES[x]}
        if isinstance(x, Handle):
            return {"$h": x.id, "type": x.type}
        if on_unknown is not None:
            return enc(on_unknown(x), depth)
        raise CodecError(f"cannot send a {type(x).__name__}")

    def enc_tensor(t, was_numpy):
        t = torch.Tensor.detach(t)
        if t.layout != torch.strided or t.dtype not in _NAMES:
            raise CodecError(f"unsupported tensor ({t.dtype}, {t.layout})")
        t = t.cpu().contiguous()
        raw = t.view(torch.int16) if t.dtype == torch.bfloat16 else t  # numpy has no bfloat16
        buffers.append(raw.numpy().tobytes())
        return {"$x": len(buffers) - 1, "dtype": _NAMES[t.dtype], "shape": list(t.shape), "np": was_numpy}

    header = json.dumps(enc(obj, 0)).encode()
    parts = [struct.pack("<QQ", len(header), len(buffers)), header]
    for b in buffers:
        parts += [struct.pack("<Q", len(b)), b]
    return b"".join(parts)


def decode(data: bytes):
    """Inverse of ``encode``; raises ``CodecError`` on anything malformed."""
    try:
        hlen, nbuf = struct.unpack_from("<QQ", data, 0)
        pos = 16
        if pos + hlen > len(data):
            raise CodecError("truncated header")
        header = json.loads(data[pos : pos + hlen])
        pos += hlen
        buffers = []
        for _ in range(nbuf):
            (blen,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            if pos + blen > len(data):
                raise CodecError("truncated buffer")
            buffers.append(data[pos : pos + blen])
            pos += blen
        if pos != len(data):
            raise CodecError("trailing bytes after the last buffer")
        return _dec(header, buffers, 0, set())
    except CodecError:
        raise
    except Exception as exc:  # struct/json/recursion errors from a malformed message
        raise CodecError(f"malformed message: {type(exc).__name__}") from None


def _dec(x, buffers, depth, used: set):
    if depth > MAX_DEPTH:
        raise CodecError("value nested too deeply")
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, list):
        return [_dec(e, buffers, depth + 1, used) for e in x]
    if not isinstance(x, dict):
        raise CodecError("unexpected JSON value")
    if "$t" in x:
        return tuple(_dec(e, buffers, depth + 1, used) for e in x["$t"])
    if "$d" in x:
        out = {}
        for k, v in x["$d"]:
            key = _dec(k, buffers, depth + 1, used)
            if not isinstance(key, (str, int, float, bytes, tuple, type(None))):
                raise CodecError("unhashable dict key")
            out[key] = _dec(v, buffers, depth + 1, used)
        return out
    if "$b" in x:
        return base64.b64decode(x["$b"], validate=True)
    if "$dtype" in x:
        return _DTYPES[x["$dtype"]]
    if "$h" in x:
        return Handle(x["$h"], x["type"])
    if "$x" in x:
        dtype = _DTYPES[x["dtype"]]
        shape = [int(s) for s in x["shape"]]
        index = int(x["$x"])
        if index in used or not 0 <= index < len(buffers):
            raise CodecError("tensor buffer referenced twice or out of range")  # no amplification
        used.add(index)
        raw = buffers[index]
        count = int(np.prod(shape)) if shape else 1
        if count * torch.empty((), dtype=dtype).element_size() != len(raw):
            raise CodecError("tensor size does not match its buffer")
        load_as = torch.int16 if dtype == torch.bfloat16 else dtype
        t = torch.frombuffer(bytearray(raw), dtype=load_as) if raw else torch.empty(0, dtype=load_as)
        t = t.view(dtype).reshape(shape)
        return t.numpy() if x.get("np") else t
    raise CodecError("unknown tagged value")
