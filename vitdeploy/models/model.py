"""A perception model: a ViT encoder and one head."""

from __future__ import annotations

import torch
from torch import nn

from vitdeploy.models.encoder import VisionTransformer


class PerceptionModel(nn.Module):
    """images (B, 3, H, W) -> dict of the head's raw outputs, in ``output_names`` order.

    The batch axis is the camera axis: one image per camera of the rig.
    """

    def __init__(self, *, encoder: VisionTransformer, head: nn.Module, head_type: str):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.head_type = head_type

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.head.output_names)

    @property
    def patch_size(self) -> int:
        return self.encoder.patch_size

    def split_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, tuple[int, int]]:
        """Run the encoder: (prefix tokens (B, P, dim): the class token, then any registers, or None;
        patch tokens (B, N, dim); grid). Heads read the class token as ``prefix[:, 0]``."""
        grid = self.encoder.grid_for(images.shape[-2], images.shape[-1])
        tokens = self.encoder(images)
        k = self.encoder.num_prefix_tokens
        return (tokens[:, :k] if k else None), tokens[:, k:], grid

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        cls, patches, grid = self.split_tokens(images)
        return self.head(patches, cls=cls, grid=grid)
