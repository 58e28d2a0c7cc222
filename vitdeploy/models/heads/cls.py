"""CLS-token classifier."""

from __future__ import annotations

import torch
from torch import nn


class ClsHead(nn.Module):
    """logits (B, num_classes) from the CLS token (B, 1, dim)."""

    output_names = ("logits",)

    def __init__(self, dim: int, *, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, patches: torch.Tensor, *, cls: torch.Tensor | None, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        if cls is None:
            raise ValueError("ClsHead needs an encoder built with class_token=True")
        return {"logits": self.fc(cls[:, 0])}
