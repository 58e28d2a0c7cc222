"""Multi-head attention with two interchangeable paths.

``fused=True`` calls ``scaled_dot_product_attention`` (fast in eager PyTorch). ``fused=False``
spells out ``softmax(q @ k^T * scale) @ v`` as separate MatMul/Softmax ops: that is what the ONNX
graph shows to quantization (Q/DQ placement on the two attention matmuls is decided per graph,
DESIGN.md decision 2) and to TensorRT's MHA fusion. Both paths hold the same parameters, so a
checkpoint loads into either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, fused: bool,
           mask: torch.Tensor | None = None) -> torch.Tensor:
    """q: (B, h, Lq, d), k/v: (B, h, Lk, d), mask: additive (Lq, Lk) or None -> (B, h, Lq, d)."""
    if fused:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scale = q.shape[-1] ** -0.5
    logits = torch.matmul(q * scale, k.transpose(-2, -1))
    if mask is not None:
        logits = logits + mask
    return torch.matmul(logits.softmax(dim=-1), v)


class SelfAttention(nn.Module):
    """timm-style self-attention: one fused ``qkv`` linear and an output ``proj``."""

    def __init__(self, dim: int, *, num_heads: int, qkv_bias: bool = True, fused: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.fused = fused
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, dim) -> (B, N, dim)."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = attend(qkv[0], qkv[1], qkv[2], fused=self.fused)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MultiHeadAttention(nn.Module):
    """Attention with separate query/key/value projections (DETR decoders: self and cross)."""

    def __init__(self, dim: int, *, num_heads: int, fused: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.fused = fused
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: (B, Lq, dim), k/v: (B, Lk, dim) -> (B, Lq, dim)."""
        b, lq, c = q.shape
        out = attend(self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v)),
                     fused=self.fused)
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, *, out_dim: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
