"""Pretrained ViT backbones (timm, facebookresearch/dinov2, Hugging Face) as vitdeploy encoders."""

from vitdeploy.models.backbones.layouts import BackboneLayout
from vitdeploy.models.backbones.load import Backbone, load_backbone, read_backbone

__all__ = ["Backbone", "BackboneLayout", "load_backbone", "read_backbone"]
