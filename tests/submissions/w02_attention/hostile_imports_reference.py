# HOSTILE: tries to use the instructor's reference implementation instead of writing its own.
# * top level: `import reference.attention as R` and `from reference.attention import softmax as _s`
#   (the worker refuses imports of the kit's packages: both statements fail with ImportError while the
#   notebook loads; loading goes on with the next statement);
# * softmax imports reference.attention inside the function -> ImportError at every call (the names
#   of the reference functions are spelled so that the banned-API check does not catch them first);
# * causal_mask uses R (NameError: the top-level import failed), then looks for reference/attention.py
#   on disk (next to the grader's own files, in the editable-install mapping, on sys.path) and reads
#   it -> PermissionError: the grader, running as root, made the reference unreadable to the worker;
# * scaled_dot_product_attention imports it with importlib -> ImportError;
# * MultiHeadAttention removes the worker's import blocker from sys.meta_path and imports the
#   reference package -> the import system finds it but cannot read it: PermissionError.
# Must lose everything: softmax 0/5 (ImportError), causal_mask 0/3 (PermissionError),
# scaled_dot_product_attention 0/10 (ImportError), MultiHeadAttention 0/10 (PermissionError, the
# constructor itself fails). Score 0 / 28.
# (Only meaningful when grading as root: as another user the worker runs as that user and can read
# whatever that user can.)
import glob
import importlib
import math
import os
import sys

import torch
import torch.nn as nn

import reference.attention as R
from reference.attention import softmax as _s


def _reference_source():
    """The text of reference/attention.py, wherever it is; raises the most telling error if unreadable."""
    candidates = []
    codec = sys.modules.get("codec")  # the worker's wire-format module, loaded from the kit's sandbox folder
    if codec is not None and getattr(codec, "__file__", None):
        kit = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(codec.__file__))))
        candidates.append(os.path.join(kit, "reference", "attention.py"))
    for name, module in list(sys.modules.items()):  # pip's editable-install finder knows the package path
        mapping = getattr(module, "MAPPING", None)
        if name.startswith("__editable__") and isinstance(mapping, dict) and "reference" in mapping:
            candidates.append(os.path.join(mapping["reference"], "attention.py"))
    for entry in sys.path:
        candidates.append(os.path.join(entry or ".", "reference", "attention.py"))
    candidates += glob.glob("/work/*/reference/attention.py") + glob.glob("/home/*/*/reference/attention.py")
    errors = []
    for path in dict.fromkeys(candidates):
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read()
        except OSError as exc:
            errors.append(exc)
    denied = [e for e in errors if isinstance(e, PermissionError)]
    raise denied[0] if denied else FileNotFoundError("reference/attention.py not found anywhere")


def softmax(x, dim=-1):
    import reference.attention as reference  # HOSTILE

    return getattr(reference, "soft" + "max")(x, dim=dim)  # (spelled so the banned-API check misses it)


def causal_mask(T):
    try:
        return R.causal_mask(T)  # HOSTILE: R is not defined, its import failed
    except NameError:
        pass
    namespace = {}
    exec(_reference_source(), namespace)  # HOSTILE: read and run the reference's source
    return namespace["causal_mask"](T)


def scaled_dot_product_attention(q, k, v, mask=None, dropout=None):
    reference = importlib.import_module("reference.attention")  # HOSTILE
    return getattr(reference, "scaled_dot_product_" + "attention")(q, k, v, mask=mask)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        # HOSTILE: drop the worker's import blocker, then import the reference package directly.
        sys.meta_path[:] = [f for f in sys.meta_path if "Block" not in type(f).__name__]
        for name in [n for n in sys.modules if n == "reference" or n.startswith("reference.")]:
            del sys.modules[name]
        reference = importlib.import_module("reference.attention")
        self.impl = reference.MultiHeadAttention(d_in, d_out, context_length, dropout, num_heads, qkv_bias)
        self.W_query, self.W_key = self.impl.W_query, self.impl.W_key
        self.W_value, self.out_proj = self.impl.W_value, self.impl.out_proj

    def forward(self, x):
        return self.impl(x)
