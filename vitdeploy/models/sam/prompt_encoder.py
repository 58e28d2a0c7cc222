"""SAM's prompt encoder: points and boxes become sparse tokens, a mask becomes a dense map.

Point and box-corner coordinates are in pixels of the padded model input (``input_image_size``).
Each becomes a random-Fourier positional encoding plus a learned embedding for its kind:
``point_embeddings[0]`` background point, ``[1]`` foreground point, ``[2]`` box top-left,
``[3]`` box bottom-right, and ``not_a_point_embed`` for padding (label -1). A low-resolution mask
prompt goes through ``mask_downscaling``; without one, ``no_mask_embed`` fills the dense map.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vitdeploy.models.sam.common import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Fourier features of 2-D coordinates with a fixed random Gaussian frequency matrix.

    Produces ``2 * num_pos_feats`` channels (sin and cos). The matrix is a buffer that the
    official checkpoints store, so it is part of the state dict.
    """

    def __init__(self, num_pos_feats: int = 64, *, scale: float | None = None):
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def encode_normalized(self, coords: torch.Tensor) -> torch.Tensor:
        """coords: (..., 2) as (x, y) in 0..1 -> (..., 2 * num_pos_feats)."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """The encoding of every cell centre of an (h, w) grid -> (2 * num_pos_feats, h, w)."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        y = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        x = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
        return self.encode_normalized(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """coords: (B, N, 2) as (x, y) pixels of an (H, W) image -> (B, N, 2 * num_pos_feats)."""
        h, w = image_size
        scale = torch.tensor([1.0 / w, 1.0 / h], device=coords.device)
        return self.encode_normalized(coords.float() * scale)


class PromptEncoder(nn.Module):
    """Points, boxes and masks -> (sparse (B, N, embed_dim), dense (B, embed_dim, h, w)) embeddings."""

    #: background point, foreground point, box top-left, box bottom-right
    num_point_embeddings = 4

    def __init__(self, *, embed_dim: int, image_embedding_size: tuple[int, int], input_image_size: tuple[int, int],
                 mask_in_chans: int, activation: type[nn.Module] = nn.GELU):
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = input_image_size
        self.image_embedding_size = image_embedding_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(self.num_point_embeddings))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            activation(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """The positional encoding of the image embedding grid -> (1, embed_dim, h, w)."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, *, pad: bool) -> torch.Tensor:
        """points: (B, N, 2) pixels, labels: (B, N) in {-1, 0, 1} -> (B, N [+1], embed_dim).

        ``pad`` appends one padding point; SAM was trained with it whenever no box is given.
        """
        points = points + 0.5  # the centre of the pixel
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        labels = labels[..., None]
        embedding = torch.where(labels == -1, self.not_a_point_embed.weight, embedding)
        embedding = embedding + torch.where(labels == 0, self.point_embeddings[0].weight, 0.0)
        return embedding + torch.where(labels == 1, self.point_embeddings[1].weight, 0.0)

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """boxes: (B, 4) as x0, y0, x1, y1 pixels -> corner tokens (B, 2, embed_dim)."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_kind = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight], dim=0)
        return embedding + corner_kind

    def forward(self, points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None,
                masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """points: ((B, N, 2) pixels, (B, N) labels) or None; boxes: (B, 4) or None;
        masks: (B, 1, 4h, 4w) mask logits or None -> sparse (B, N', embed_dim), dense (B, embed_dim, h, w).
        """
        if points is not None:
            batch = points[0].shape[0]
        elif boxes is not None:
            batch = boxes.shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        device = self.no_mask_embed.weight.device
        sparse = torch.empty((batch, 0, self.embed_dim), device=device)
        if points is not None:
            sparse = torch.cat([sparse, self._embed_points(points[0], points[1], pad=boxes is None)], dim=1)
        if boxes is not None:
            sparse = torch.cat([sparse, self._embed_boxes(boxes)], dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        return sparse, dense
