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
    """Query features (..., dim) -> box offsets (..., 4) in logit space."""

    def __init__(self, dim: int, *, num_layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers - 1))
        self.out = nn.Linear(dim, 4)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.out(x)


def reference_boxes(num_queries: int) -> torch.Tensor:
    """(Q, 4) initial boxes in logit space: centres spread over the image on a grid, small size.

    Anchoring each query to a region (as Anchor/Deformable DETR do) makes the Hungarian matching
    stable early in training, so the detector converges in far fewer steps than plain DETR.
    """
    cols = max(1, round((num_queries * 2) ** 0.5))
    rows = -(-num_queries // cols)
    ys, xs = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing="ij")
    centres = torch.stack([xs.flatten(), ys.flatten()], -1)[:num_queries]
    boxes = torch.cat([centres, torch.full((num_queries, 2), 0.1)], -1)
    return torch.logit(boxes, eps=1e-4)


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
        self.ref_boxes = nn.Parameter(reference_boxes(num_queries))

    def _predict(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.class_embed(h), "boxes": (self.box_embed(h) + self.ref_boxes).sigmoid()}

    def forward_layers(self, patches: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Predictions of every decoder layer (auxiliary losses); the last one is the output."""
        return [self._predict(h) for h in self.decoder(patches)]

    def forward(self, patches: torch.Tensor, *, cls: torch.Tensor | None, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        return self._predict(self.decoder(patches)[-1])
