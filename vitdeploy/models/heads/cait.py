"""CaiT head: the CLS token enters after the patch encoder and only it is updated."""

from __future__ import annotations

import torch
from torch import nn

from vitdeploy.models.heads.class_attention import ClassAttentionBlock


class CaitHead(nn.Module):
    """patches (B, N, dim) -> logits (B, num_classes) via ``depth`` class-attention blocks."""

    output_names = ("logits",)

    def __init__(self, dim: int, *, num_heads: int, num_classes: int, depth: int = 2, fused_attention: bool = True):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(
            ClassAttentionBlock(dim, num_heads=num_heads, fused_attention=fused_attention) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, patches: torch.Tensor, *, cls: torch.Tensor | None, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        token = self.cls_token.expand(patches.shape[0], -1, -1)
        for block in self.blocks:
            token = block(token, patches)
        return {"logits": self.fc(self.norm(token)[:, 0])}
