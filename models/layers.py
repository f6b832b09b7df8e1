"""Building blocks shared by the custom models.

Dropout: on CPU, torch's dropout draws one Bernoulli sample per element (about 9 ns each here), which made
dropout half of a Transformer training step. Here one 64-bit draw gives eight uniform random bytes, each
compared with p·256: the same dropout with p rounded to 1/256, at a fraction of the cost.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def random_bytes(n: int) -> torch.Tensor:
    """n uniform bytes from the global torch generator (so seeding and checkpointed RNG state apply)."""
    # The full int64 range: plain random_() stops at 2**63 and would leave the top byte one bit short.
    draws = torch.empty(-(-n // 8), dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    return draws.view(torch.uint8)[:n]


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p <= 0:
        return x
    threshold = min(255, round(p * 256))
    keep = random_bytes(x.numel()).view(x.shape) >= threshold
    return x * keep * (256 / (256 - threshold))


class Dropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class EncoderLayer(nn.Module):
    """Post-norm Transformer encoder layer, numerically the same as
    nn.TransformerEncoderLayer(batch_first=True, activation='relu'). Training uses explicit attention so the
    attention dropout is the fast one above; inference uses fused scaled_dot_product_attention."""

    def __init__(self, dim: int, heads: int, ff_dim: int, p: float):
        super().__init__()
        self.heads, self.p = heads, p
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ff1, self.ff2 = nn.Linear(dim, ff_dim), nn.Linear(ff_dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def attention(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        """key_bias: (B, 1, 1, L), 0 for real tokens and -inf for padding."""
        b, length, dim = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        if self.training and self.p > 0:
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(dim // self.heads)) + key_bias
            y = dropout(scores.softmax(-1), self.p, True) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_bias)
        return self.proj(y.transpose(1, 2).reshape(b, length, dim))

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + dropout(self.attention(x, key_bias), self.p, self.training))
        hidden = dropout(F.relu(self.ff1(x)), self.p, self.training)
        return self.norm2(x + dropout(self.ff2(hidden), self.p, self.training))

    @torch.no_grad()
    def load_from_torch(self, ref: nn.TransformerEncoderLayer) -> "EncoderLayer":
        """Copy weights from PyTorch's layer (used by the test that compares the two)."""
        self.qkv.weight.copy_(ref.self_attn.in_proj_weight)
        self.qkv.bias.copy_(ref.self_attn.in_proj_bias)
        self.proj.load_state_dict(ref.self_attn.out_proj.state_dict())
        self.ff1.load_state_dict(ref.linear1.state_dict())
        self.ff2.load_state_dict(ref.linear2.state_dict())
        self.norm1.load_state_dict(ref.norm1.state_dict())
        self.norm2.load_state_dict(ref.norm2.state_dict())
        return self
