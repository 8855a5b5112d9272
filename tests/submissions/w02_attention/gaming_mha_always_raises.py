# Gaming a check: MultiHeadAttention refuses every configuration, hoping to collect the points of the
# "indivisible d_out raises ValueError" test without implementing anything. The other exercises are
# left as released (stubs). Must score 0: that test also requires a valid configuration to construct.
import torch.nn as nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        raise ValueError("d_out must be divisible by num_heads")
