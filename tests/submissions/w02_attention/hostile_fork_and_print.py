# HOSTILE: softmax is correct_alternative's, but its first call also misbehaves, once:
# * starts `sleep 301` in a new session (subprocess.Popen(..., start_new_session=True)),
# * double-forks a Python process that detaches (setsid), renames itself "hostile-orphan" and sleeps,
# * prints 10,000 lines of fake GitHub workflow commands (`::error::fake`, `::set-output name=result::`)
#   to stdout and stderr, and tries to write them into the grader's own stdout/stderr through
#   /proc/<parent>/fd/1 and /proc/<parent>/fd/2,
# * writes a 100 MB file into its working folder.
# The worker's 16 MB file-size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ, so the write raises
# OSError [Errno 27] File too large) makes that first call raise; every later call returns the correct
# softmax. Everything else is correct_alternative.py.
# Must lose: softmax::test_softmax_matches_reference only (2 points: the first graded call raises;
# hypothesis replays the failing example, which then passes, and raises FlakyFailure; the engine
# currently reports that as a "grader error" rather than as the student's OSError).
# Must keep: the other softmax tests (3), causal_mask (3), scaled_dot_product_attention (10),
# MultiHeadAttention (10). Score 26 / 28.
# After grading: no process of user nobody is left running, and no line of the grader's output starts
# with `::`.
import ctypes
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn


_misbehaved = False


def _misbehave_once():
    global _misbehaved
    if _misbehaved:
        return
    _misbehaved = True
    subprocess.Popen(["sleep", "301"], start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    child = os.fork()
    if child == 0:  # the middle process: fork again and exit, so the grandchild is orphaned
        try:
            if os.fork() == 0:
                os.setsid()
                try:
                    ctypes.CDLL(None).prctl(15, b"hostile-orphan", 0, 0, 0)  # PR_SET_NAME
                except Exception:
                    pass
                time.sleep(300)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    fake = "".join(f"::error::fake {i}\n::set-output name=result::eyJzY29yZSI6IDI4fQ==\n" for i in range(5000))
    print(fake, end="", flush=True)
    print(fake, end="", file=sys.stderr, flush=True)
    for fd in (1, 2):  # the grader's own stdout and stderr, if the kernel lets us open them
        try:
            with open(f"/proc/{os.getppid()}/fd/{fd}", "w") as out:
                out.write(fake)
        except OSError:
            pass
    with open("big.bin", "wb") as fh:
        fh.write(b"\0" * (100 * 2**20))


def softmax(x, dim=-1):
    _misbehave_once()  # HOSTILE
    # softmax = exp(x - logsumexp(x)). A slice that is all -inf has logsumexp -inf and
    # (-inf) - (-inf) = NaN, so compute logsumexp on zeros for those slices instead:
    # exp(-inf - finite) = 0, and no NaN appears in the forward or backward pass.
    all_neg_inf = torch.isneginf(x).all(dim=dim, keepdim=True)
    safe_x = torch.where(all_neg_inf, torch.zeros_like(x), x)
    return torch.exp(x - torch.logsumexp(safe_x, dim=dim, keepdim=True))


def causal_mask(T):
    rows = torch.arange(T).unsqueeze(1)  # query index i
    cols = torch.arange(T).unsqueeze(0)  # key index j
    return cols <= rows


def scaled_dot_product_attention(q, k, v, mask=None, dropout=None):
    d_k = q.shape[-1]
    scores = torch.einsum("...qd,...kd->...qk", q, k) * (1.0 / math.sqrt(d_k))
    if mask is not None:
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    weights = softmax(scores, dim=-1)
    # Rows with no allowed key: softmax above already gives 0 there; nan_to_num is belt and braces.
    weights = torch.nan_to_num(weights, nan=0.0)
    if dropout is not None:
        weights = dropout(weights)
    return torch.einsum("...qk,...kd->...qd", weights, v)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, f"d_out ({d_out}) must be divisible by num_heads ({num_heads})"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, _ = x.shape
        if T > self.context_length:
            raise ValueError(f"sequence length {T} > context_length {self.context_length}")
        queries, keys, values = self.W_query(x), self.W_key(x), self.W_value(x)
        mask = causal_mask(T).to(x.device)
        outputs = []
        for h in range(self.num_heads):
            block = slice(h * self.head_dim, (h + 1) * self.head_dim)  # head h's features
            outputs.append(
                scaled_dot_product_attention(
                    queries[:, :, block], keys[:, :, block], values[:, :, block], mask, dropout=self.dropout
                )
            )
        return self.out_proj(torch.cat(outputs, dim=-1))
