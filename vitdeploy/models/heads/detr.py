"""DETR-style detection head: learned queries -> class logits and normalised boxes.

Raw tensors out: ``logits`` (B, Q, num_classes + 1), the last class meaning "no object", and
``boxes`` (B, Q, 4) as (cx, cy, w, h) in 0..1 of the model input. Turning them into pixel boxes
with a score threshold is post-processing (``vitdeploy.runtime.postprocess``).
"""

from __future__ import annotations

import torch
from torch import nn

from vitdeploy.models.heads.query_decoder import QueryDecoder


class BoxMlp(nn.Module):
    def __init__(self, dim: int, *, num_layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers - 1))
        self.out = nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.out(x).sigmoid()


class DetrHead(nn.Module):
    output_names = ("logits", "boxes")

    def __init__(self, dim: int, *, num_classes: int, num_queries: int = 100, num_layers: int = 3,
                 num_heads: int = 8, fused_attention: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.decoder = QueryDecoder(dim, num_queries=num_queries, num_layers=num_layers, num_heads=num_heads,
                                    fused_attention=fused_attention)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.box_embed = BoxMlp(dim)

    def forward_layers(self, patches: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Predictions of every decoder layer (auxiliary losses); the last one is the output."""
        return [{"logits": self.class_embed(h), "boxes": self.box_embed(h)} for h in self.decoder(patches)]

    def forward(self, patches: torch.Tensor, *, cls: torch.Tensor | None, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        h = self.decoder(patches)[-1]
        return {"logits": self.class_embed(h), "boxes": self.box_embed(h)}
