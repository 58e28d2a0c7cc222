"""The Segment Anything model: an image encoder, a prompt encoder and a mask decoder.

The attribute names (``image_encoder``, ``prompt_encoder``, ``mask_decoder``) are the official
ones, so an official checkpoint (``sam_vit_b_01ec64.pth`` ...) loads with ``load_state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitdeploy.models.sam.image_encoder import ImageEncoderViT
from vitdeploy.models.sam.mask_decoder import MaskDecoder
from vitdeploy.models.sam.prompt_encoder import PromptEncoder

#: SAM's pixel normalisation in 0..255 units (the ImageNet mean and std).
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class Sam(nn.Module):
    mask_threshold: float = 0.0  # mask logits above it are inside the mask
    image_format: str = "RGB"

    def __init__(self, *, image_encoder: ImageEncoderViT, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder,
                 pixel_mean: tuple[float, float, float] = PIXEL_MEAN,
                 pixel_std: tuple[float, float, float] = PIXEL_STD):
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        # Not persistent: the official checkpoints do not store them.
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)

    @property
    def img_size(self) -> int:
        return self.image_encoder.img_size

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) RGB in 0..255, longest side already resized to ``img_size`` ->
        (B, 3, img_size, img_size) normalised and zero-padded at the bottom and right."""
        x = (images - self.pixel_mean) / self.pixel_std
        return F.pad(x, (0, self.img_size - x.shape[-1], 0, self.img_size - x.shape[-2]))

    def postprocess_masks(self, masks: torch.Tensor, *, input_size: tuple[int, int],
                          original_size: tuple[int, int]) -> torch.Tensor:
        """Low-res mask logits (B, M, 4h, 4w) -> (B, M, *original_size): upscale to the padded input,
        crop the padding (``input_size`` is the resized image before padding), resize to the original."""
        masks = F.interpolate(masks, (self.img_size, self.img_size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor, *, point_coords: torch.Tensor | None = None,
                point_labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
                mask_inputs: torch.Tensor | None = None,
                multimask_output: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One prompt set per image.

        images: (B, 3, S, S) preprocessed (see ``preprocess``); point_coords: (B, N, 2) as (x, y)
        pixels of the S x S input; point_labels: (B, N), 1 foreground, 0 background; boxes: (B, 4)
        as x0, y0, x1, y1 pixels; mask_inputs: (B, 1, 4h, 4w) low-res logits of an earlier pass
        -> low_res_masks (B, M, 4h, 4w) logits and iou_predictions (B, M), M = 3 with
        ``multimask_output`` else 1.
        """
        points = None if point_coords is None else (point_coords, point_labels)
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=mask_inputs)
        return self.mask_decoder(image_embeddings=self.image_encoder(images), image_pe=self.prompt_encoder.get_dense_pe(),
                                 sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                 multimask_output=multimask_output)
