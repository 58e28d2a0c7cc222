"""The ViT encoder: patch embedding, learned position embedding, pre-norm blocks.

The position embedding is learned on the default patch grid and resized bicubically for any
input whose height and width are multiples of the patch size, so one checkpoint serves a square
classification crop and a non-square automotive frame such as 448x800.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vitdeploy.models.attention import Mlp, SelfAttention


class PatchEmbed(nn.Module):
    def __init__(self, *, patch_size: int, in_chans: int = 3, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) -> (B, H/p * W/p, dim)."""
        return self.proj(x).flatten(2).transpose(1, 2)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float = 4.0, fused_attention: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads=num_heads, fused=fused_attention)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def resize_pos_embed(pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """pos: (1, gh*gw, dim) on ``old_grid`` -> (1, nh*nw, dim), bicubic."""
    if tuple(old_grid) == tuple(new_grid):
        return pos
    dim = pos.shape[-1]
    grid = pos.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim)


class VisionTransformer(nn.Module):
    """ViT encoder returning tokens, not logits (heads are separate modules).

    ``forward(images)`` with images (B, 3, H, W), H and W multiples of ``patch_size``, returns
    tokens (B, [1 +] H/p * W/p, embed_dim), layer-normed; the CLS token comes first when
    ``class_token`` is set. The batch axis is the camera axis.
    """

    def __init__(self, *, img_size: tuple[int, int] = (224, 224), patch_size: int = 16, embed_dim: int = 192,
                 depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0, class_token: bool = True,
                 fused_attention: bool = True):
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.num_prefix_tokens = 1 if class_token else 0
        self.patch_embed = PatchEmbed(patch_size=patch_size, embed_dim=embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, fused_attention=fused_attention)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {p}")
        return height // p, width // p

    @torch.no_grad()
    def set_grid(self, grid: tuple[int, int]) -> None:
        """Resize the learned position embedding in place to ``grid`` (export bakes the input size)."""
        grid = (int(grid[0]), int(grid[1]))
        self.pos_embed = nn.Parameter(resize_pos_embed(self.pos_embed.data, self.grid, grid))
        self.grid = grid

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b = images.shape[0]
        grid = self.grid_for(images.shape[-2], images.shape[-1])
        x = self.patch_embed(images)
        x = x + resize_pos_embed(self.pos_embed, self.grid, grid)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def count_grid_tokens(image_size: tuple[int, int], patch_size: int) -> int:
    return math.prod(s // patch_size for s in image_size)
