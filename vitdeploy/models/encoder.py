"""The ViT encoder: patch embedding, learned position embedding, pre-norm blocks.

The position embedding is learned on the default patch grid and resized bicubically for any
input whose height and width are multiples of the patch size, so one checkpoint serves a square
classification crop and a non-square automotive frame such as 448x800.

The zoo's own encoder is the default. ``EncoderVariant`` holds what pretrained ViTs of timm,
DINOv2 and Hugging Face differ in (register tokens, LayerScale, a position embedding that also
covers the class token, their LayerNorm eps, their way of resizing the position embedding), so
one module runs them all with their own weights (``vitdeploy.models.backbones``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vitdeploy.models.attention import Mlp, SelfAttention


@dataclass(frozen=True)
class PositionInterpolation:
    """How the position embedding is resized to another patch grid (always bicubic, corners not aligned).

    ``antialias``: PyTorch's antialiased bicubic (timm, DINOv2 with registers). ``offset``: DINOv2's
    historical kludge, a scale factor of (new + offset) / old instead of an output size, which moves
    the sampling points slightly (facebookresearch/dinov2 without registers uses 0.1).
    """

    antialias: bool = False
    offset: float = 0.0


@dataclass(frozen=True)
class EncoderVariant:
    """Where a pretrained ViT differs from vitdeploy's own encoder (the defaults).

    ``register_tokens``: learned tokens after the class token (DINOv2 registers; DeiT's distillation
    token takes this slot too). ``embedded_prefix``: how many of the leading prefix tokens (class,
    then registers) have their own entry at the start of ``pos_embed`` (0: only patches have one, as
    in the zoo and timm's ``no_embed_class``; 1: the class token, as in the original ViT and DINOv2).
    """

    register_tokens: int = 0
    embedded_prefix: int = 0
    layer_scale: bool = False
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    final_norm: bool = True
    interpolation: PositionInterpolation = field(default_factory=PositionInterpolation)


@dataclass(frozen=True)
class EncoderConfig:
    """Everything that fixes an encoder's parameters and its function, for building one from a checkpoint."""

    image_size: tuple[int, int]  # (H, W) pixels of the grid the position embedding was learned on
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    class_token: bool = True
    variant: EncoderVariant = field(default_factory=EncoderVariant)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, nested (what a manifest's ``BackboneRecord.encoder`` holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncoderConfig:
        """The inverse of ``to_dict``; unknown keys are a ``TypeError``."""
        variant = dict(data.get("variant", {}))
        variant["interpolation"] = PositionInterpolation(**variant.get("interpolation", {}))
        return cls(**{**data, "image_size": tuple(data["image_size"]), "variant": EncoderVariant(**variant)})

    def build(self, *, fused_attention: bool = True) -> VisionTransformer:
        return VisionTransformer(img_size=self.image_size, patch_size=self.patch_size, embed_dim=self.embed_dim,
                                 depth=self.depth, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                                 class_token=self.class_token, fused_attention=fused_attention,
                                 variant=self.variant)


class PatchEmbed(nn.Module):
    def __init__(self, *, patch_size: int, in_chans: int = 3, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) -> (B, H/p * W/p, dim)."""
        return self.proj(x).flatten(2).transpose(1, 2)


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch (CaiT; DINOv2's ``ls1``/``ls2``)."""

    def __init__(self, dim: int, *, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))."""

    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float = 4.0, fused_attention: bool = True,
                 qkv_bias: bool = True, layer_scale: bool = False, norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = SelfAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias, fused=fused_attention)
        self.ls1 = LayerScale(dim) if layer_scale else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, round(dim * mlp_ratio))
        self.ls2 = LayerScale(dim) if layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def resize_pos_embed(pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int], *,
                     interpolation: PositionInterpolation = PositionInterpolation()) -> torch.Tensor:
    """pos: (1, gh*gw, dim) on ``old_grid`` -> (1, nh*nw, dim), bicubic as ``interpolation`` says."""
    if tuple(old_grid) == tuple(new_grid):
        return pos
    dim = pos.shape[-1]
    grid = pos.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2).float()
    if interpolation.offset:
        scale = tuple((n + interpolation.offset) / o for n, o in zip(new_grid, old_grid, strict=True))
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=interpolation.antialias)
    else:
        grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False,
                             antialias=interpolation.antialias)
    return grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(pos.dtype)


class VisionTransformer(nn.Module):
    """ViT encoder returning tokens, not logits (heads are separate modules).

    ``forward(images)`` with images (B, 3, H, W), H and W multiples of ``patch_size``, returns
    tokens (B, P + H/p * W/p, embed_dim) after the final norm: the P = ``num_prefix_tokens`` prefix
    tokens first (the class token, then the register tokens), then the patch tokens in row-major
    order. The batch axis is the camera axis.
    """

    def __init__(self, *, img_size: tuple[int, int] = (224, 224), patch_size: int = 16, embed_dim: int = 192,
                 depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0, class_token: bool = True,
                 fused_attention: bool = True, variant: EncoderVariant = EncoderVariant()):
        super().__init__()
        if variant.embedded_prefix > int(class_token) + variant.register_tokens:
            raise ValueError(f"{variant.embedded_prefix} embedded prefix tokens but only "
                             f"{int(class_token) + variant.register_tokens} prefix tokens")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.variant = variant
        self.grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.num_prefix_tokens = int(class_token) + variant.register_tokens
        self.patch_embed = PatchEmbed(patch_size=patch_size, embed_dim=embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        self.register_tokens = (nn.Parameter(torch.zeros(1, variant.register_tokens, embed_dim))
                                if variant.register_tokens else None)
        self.pos_embed = nn.Parameter(torch.zeros(1, variant.embedded_prefix + self.grid[0] * self.grid[1], embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, fused_attention=fused_attention,
                  qkv_bias=variant.qkv_bias, layer_scale=variant.layer_scale, norm_eps=variant.norm_eps)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=variant.norm_eps) if variant.final_norm else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for token in (self.cls_token, self.register_tokens):
            if token is not None:
                nn.init.trunc_normal_(token, std=0.02)
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

    def _patch_pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        """(1, gh*gw, dim): the patches' position embedding resized to ``grid`` the source's way."""
        k = self.variant.embedded_prefix
        patch_pos = self.pos_embed[:, k:] if k else self.pos_embed  # no Slice node in the zoo's graphs
        return resize_pos_embed(patch_pos, self.grid, grid, interpolation=self.variant.interpolation)

    @torch.no_grad()
    def set_grid(self, grid: tuple[int, int]) -> None:
        """Resize the learned position embedding in place to ``grid`` (export bakes the input size)."""
        grid = (int(grid[0]), int(grid[1]))
        prefix_pos = self.pos_embed.data[:, :self.variant.embedded_prefix]
        self.pos_embed = nn.Parameter(torch.cat([prefix_pos, self._patch_pos_embed(grid)], dim=1))
        self.grid = grid

    def _prefix_tokens(self, batch: int) -> torch.Tensor | None:
        """(B, P, dim) class and register tokens, with their position embedding where they have one."""
        tokens = [t.expand(batch, -1, -1) for t in (self.cls_token, self.register_tokens) if t is not None]
        if not tokens:
            return None
        prefix = torch.cat(tokens, dim=1) if len(tokens) > 1 else tokens[0]
        k = self.variant.embedded_prefix
        if k == 0:
            return prefix
        embedded = prefix[:, :k] + self.pos_embed[:, :k]
        return embedded if k == prefix.shape[1] else torch.cat([embedded, prefix[:, k:]], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grid = self.grid_for(images.shape[-2], images.shape[-1])
        x = self.patch_embed(images) + self._patch_pos_embed(grid)
        prefix = self._prefix_tokens(images.shape[0])
        if prefix is not None:
            x = torch.cat([prefix, x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def count_grid_tokens(image_size: tuple[int, int], patch_size: int) -> int:
    return math.prod(s // patch_size for s in image_size)
