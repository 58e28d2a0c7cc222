"""A rig-level perception model: the shared ViT encoder on every camera, one head over all of them.

Unlike :class:`vitdeploy.models.model.PerceptionModel`, whose batch axis is the camera axis and
which answers per camera, a ``RigPerceptionModel`` takes one frame set (cameras, 3, H, W) with the
cameras' geometry and answers once for the rig: its outputs have a leading frame-set axis of 1.

The named configurations are a plain dict (:data:`RIG3D_MODELS`). They are not in the zoo yet:
the zoo's export, calibration and runtime paths assume per-camera heads, and the rig head joins
them through the head type.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vitdeploy.errors import DataError, ModelNotFoundError
from vitdeploy.models.encoder import VisionTransformer
from vitdeploy.models.heads.rig3d import Rig3dConfig, Rig3dHead
from vitdeploy.models.sizes import DRIVING_CLASSES, ENCODER_SIZES


class RigPerceptionModel(nn.Module):
    """images (C, 3, H, W), intrinsics (C, 3, 3), cam_to_ego (C, 4, 4) -> the head's raw outputs,
    each with a leading axis of 1 (one frame set), in ``output_names`` order.

    Camera i of the feed is camera slot i of the model (its learned camera embedding), so the
    cameras come in the order the model was trained with; fewer cameras take the first slots.
    """

    head_type = "rig3d"

    def __init__(self, *, encoder: VisionTransformer, head: Rig3dHead):
        super().__init__()
        if encoder.num_prefix_tokens:
            raise ValueError("the rig head reads patch tokens only; build the encoder with class_token=False")
        self.encoder = encoder
        self.head = head

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.head.output_names)

    @property
    def max_cameras(self) -> int:
        return self.head.config.max_cameras

    def check_rig(self, images: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> None:
        """Refuse a feed whose parts disagree on the camera count, or more cameras than the model
        has camera embeddings for (shapes with a leading frame-set axis or without)."""
        lead = images.dim() - 4
        c = images.shape[lead]
        if tuple(intrinsics.shape[lead:]) != (c, 3, 3) or tuple(cam_to_ego.shape[lead:]) != (c, 4, 4):
            raise DataError(f"the rig feed disagrees on the camera count: images {tuple(images.shape)}, intrinsics "
                            f"{tuple(intrinsics.shape)}, cam_to_ego {tuple(cam_to_ego.shape)}; give one 3x3 and "
                            "one 4x4 matrix per camera image")
        if c > self.max_cameras:
            raise DataError(f"{c} cameras, but this model was built for at most {self.max_cameras} "
                            "(one learned embedding per camera slot)")

    def forward_layers(self, images: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor
                       ) -> list[dict[str, torch.Tensor]]:
        """Batched frame sets for training: images (B, C, 3, H, W), intrinsics (B, C, 3, 3),
        cam_to_ego (B, C, 4, 4) -> every decoder layer's predictions, each (B, Q, ...)."""
        self.check_rig(images, intrinsics, cam_to_ego)
        b, c = images.shape[:2]
        grid = self.encoder.grid_for(images.shape[-2], images.shape[-1])
        patches = self.encoder(images.flatten(0, 1))
        patches = patches.reshape(b, c, patches.shape[1], patches.shape[2])
        return self.head.forward_layers(patches, intrinsics=intrinsics, cam_to_ego=cam_to_ego, grid=grid)

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_rig(images, intrinsics, cam_to_ego)
        grid = self.encoder.grid_for(images.shape[-2], images.shape[-1])
        patches = self.encoder(images).unsqueeze(0)
        return self.head(patches, intrinsics=intrinsics.unsqueeze(0), cam_to_ego=cam_to_ego.unsqueeze(0), grid=grid)


@dataclass(frozen=True)
class Rig3dModel:
    """A named rig-level model: encoder size (a key of ``ENCODER_SIZES``), input size (H, W)
    pixels per camera, and the head's configuration."""

    name: str
    encoder: str
    image_size: tuple[int, int]
    head: Rig3dConfig
    description: str
    class_names: tuple[str, ...] = DRIVING_CLASSES
    patch_size: int = 16

    def build(self, *, fused_attention: bool = True) -> RigPerceptionModel:
        s = ENCODER_SIZES[self.encoder]
        encoder = VisionTransformer(img_size=self.image_size, patch_size=self.patch_size, embed_dim=s.embed_dim,
                                    depth=s.depth, num_heads=s.num_heads, class_token=False,
                                    fused_attention=fused_attention)
        head = Rig3dHead(s.embed_dim, config=self.head, patch_size=self.patch_size, fused_attention=fused_attention)
        return RigPerceptionModel(encoder=encoder, head=head)


RIG3D_MODELS: dict[str, Rig3dModel] = {
    "vit-test-rig3d": Rig3dModel(
        name="vit-test-rig3d", encoder="test", image_size=(64, 96),
        head=Rig3dConfig(num_classes=len(DRIVING_CLASSES), num_queries=10, num_latents=16, latent_blocks=1,
                         decoder_layers=2, num_heads=2, depth_bins=4),
        description="tiny test model, Perceiver-IO rig head (16 latents, 10 queries)"),
    "vit-tiny-rig3d": Rig3dModel(
        name="vit-tiny-rig3d", encoder="tiny", image_size=(256, 448),
        head=Rig3dConfig(num_classes=len(DRIVING_CLASSES), num_queries=100, num_latents=256, latent_blocks=2,
                         decoder_layers=3, num_heads=6, depth_bins=16),
        description="ViT-Tiny/16 on every camera, Perceiver-IO rig head (256 latents, 100 queries): 3D boxes "
                    "in the ego frame"),
}


def get_rig3d(name: str) -> Rig3dModel:
    spec = RIG3D_MODELS.get(name)
    if spec is None:
        raise ModelNotFoundError(f"unknown rig model {name!r}; choose one of: {', '.join(RIG3D_MODELS)}")
    return spec
