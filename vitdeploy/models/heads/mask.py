"""MaskFormer-style mask-query head.

Queries from the shared decoder give class logits and a mask embedding each; a small pixel
decoder upsamples the patch tokens to per-pixel embeddings at ``mask_stride`` (4 by default:
a 448x800 input gives 112x200 masks); each mask is the dot product of a query's embedding with
every pixel's. Outputs: ``logits`` (B, Q, num_classes + 1) and ``masks`` (B, Q, H/stride,
W/stride) as logits (sigmoid gives the probability). Upsampling to frame size is post-processing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vitdeploy.models.attention import Mlp
from vitdeploy.models.heads.query_decoder import QueryDecoder


class PixelDecoder(nn.Module):
    """patch tokens (B, N, dim) on a (gh, gw) grid -> per-pixel embeddings (B, E, gh*s, gw*s)."""

    def __init__(self, dim: int, *, mask_dim: int, upsample_steps: int):
        super().__init__()
        layers: list[nn.Module] = []
        ch = dim
        for _ in range(upsample_steps):
            out = max(mask_dim, ch // 2)
            layers += [nn.ConvTranspose2d(ch, out, kernel_size=2, stride=2), nn.GroupNorm(8 if out % 8 == 0 else 1, out), nn.GELU()]
            ch = out
        layers.append(nn.Conv2d(ch, mask_dim, kernel_size=1))
        self.net = nn.Sequential(*layers)

    def forward(self, patches: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = patches.transpose(1, 2).reshape(-1, patches.shape[-1], grid[0], grid[1])
        return self.net(x)


class MaskHead(nn.Module):
    output_names = ("logits", "masks")

    def __init__(self, dim: int, *, num_classes: int, patch_size: int, mask_stride: int = 4, num_queries: int = 50,
                 num_layers: int = 3, num_heads: int = 8, mask_dim: int = 64, fused_attention: bool = True):
        super().__init__()
        if patch_size % mask_stride or (patch_size // mask_stride) & (patch_size // mask_stride - 1):
            raise ValueError(f"patch size {patch_size} / mask stride {mask_stride} must be a power of two")
        self.mask_stride = mask_stride
        self.decoder = QueryDecoder(dim, num_queries=num_queries, num_layers=num_layers, num_heads=num_heads,
                                    fused_attention=fused_attention)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.mask_embed = Mlp(dim, dim, out_dim=mask_dim)
        self.pixel_decoder = PixelDecoder(dim, mask_dim=mask_dim, upsample_steps=int(math.log2(patch_size // mask_stride)))

    def forward(self, patches: torch.Tensor, *, cls: torch.Tensor | None, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        h = self.decoder(patches)[-1]
        pixels = self.pixel_decoder(patches, grid)
        # A batched MatMul rather than Einsum: TensorRT's Einsum support is partial, and
        # quantization places Q/DQ on MatMul inputs.
        hh, ww = pixels.shape[-2], pixels.shape[-1]
        masks = torch.matmul(self.mask_embed(h), pixels.flatten(2)).reshape(-1, h.shape[1], hh, ww)
        return {"logits": self.class_embed(h), "masks": masks}
