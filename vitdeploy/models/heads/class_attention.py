"""Class-attention (CaiT): learned tokens attend to frozen patch tokens; patches are not updated.

One implementation serves CaiT (one CLS token) and the Task Attention Block (T task tokens): each
token attends to itself and to the patch tokens, never to the other tokens, which an additive
mask over the token-token block enforces. With one token the mask is all zeros and is skipped,
so the graph is exactly CaiT's.
"""

from __future__ import annotations

import torch
from torch import nn

from vitdeploy.models.attention import Mlp, attend

_BLOCKED = -1.0e4  # large enough to zero a softmax weight, small enough to stay finite in FP16


class ClassAttention(nn.Module):
    def __init__(self, dim: int, *, num_heads: int, qkv_bias: bool = True, fused: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.fused = fused
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, tokens: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """tokens: (B, T, dim), patches: (B, N, dim) -> updated tokens (B, T, dim)."""
        b, t, c = tokens.shape
        x = torch.cat([tokens, patches], dim=1)
        mask = None
        if t > 1:
            n = patches.shape[1]
            eye = torch.eye(t, dtype=tokens.dtype, device=tokens.device)
            token_block = (1.0 - eye) * _BLOCKED
            mask = torch.cat([token_block, torch.zeros(t, n, dtype=tokens.dtype, device=tokens.device)], dim=1)
        out = attend(self._heads(self.q(tokens)), self._heads(self.k(x)), self._heads(self.v(x)),
                     fused=self.fused, mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, t, c))


class ClassAttentionBlock(nn.Module):
    """tokens += gamma1 * CA(norm(tokens), norm(patches)); tokens += gamma2 * MLP(norm(tokens))."""

    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float = 4.0, fused_attention: bool = True,
                 layer_scale: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ClassAttention(dim, num_heads=num_heads, fused=fused_attention)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma1 = nn.Parameter(torch.full((dim,), layer_scale))
        self.gamma2 = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, tokens: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.gamma1 * self.attn(self.norm1(tokens), self.norm1(patches))
        return tokens + self.gamma2 * self.mlp(self.norm2(tokens))
