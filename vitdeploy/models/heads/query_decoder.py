"""A DETR / Perceiver-IO style query decoder shared by the detection and mask heads.

N learned queries go through pre-norm layers of self-attention, cross-attention to the patch
tokens, and an MLP. Every layer's output is returned so training can put auxiliary losses on it.
"""

from __future__ import annotations

import torch
from torch import nn

from vitdeploy.models.attention import Mlp, MultiHeadAttention


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float = 4.0, fused_attention: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = MultiHeadAttention(dim, num_heads=num_heads, fused=fused_attention)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = MultiHeadAttention(dim, num_heads=num_heads, fused=fused_attention)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, query_pos: torch.Tensor,
                memory_pos: torch.Tensor | None = None) -> torch.Tensor:
        """tgt/query_pos: (B, Q, dim), memory: (B, N, dim), memory_pos: (1 or B, N, dim), added to the
        cross-attention keys when given -> (B, Q, dim)."""
        h = self.norm1(tgt)
        qk = h + query_pos
        tgt = tgt + self.self_attn(qk, qk, h)
        keys = memory if memory_pos is None else memory + memory_pos
        tgt = tgt + self.cross_attn(self.norm2(tgt) + query_pos, keys, memory)
        return tgt + self.mlp(self.norm3(tgt))


class QueryDecoder(nn.Module):
    def __init__(self, dim: int, *, num_queries: int, num_layers: int, num_heads: int, fused_attention: bool = True):
        super().__init__()
        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, dim)
        self.query_pos = nn.Embedding(num_queries, dim)
        self.layers = nn.ModuleList(
            DecoderLayer(dim, num_heads=num_heads, fused_attention=fused_attention) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, memory: torch.Tensor) -> list[torch.Tensor]:
        """memory: (B, N, dim) patch tokens -> per layer (B, Q, dim), normalised; the last is final."""
        b = memory.shape[0]
        tgt = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)
        pos = self.query_pos.weight.unsqueeze(0).expand(b, -1, -1)
        outs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, pos)
            outs.append(self.norm(tgt))
        return outs
