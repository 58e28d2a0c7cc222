"""ViT encoder, heads, SAM, the zoo, checkpoint loading and pretrained backbones.

``build`` (a zoo model on a pretrained backbone with your classes), ``save_checkpoint`` (its
fine-tuned weights, exportable from the file alone) and ``load_backbone`` are imported on first
use, so ``import vitdeploy.models`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build", "load_backbone", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    if name == "load_backbone":
        from vitdeploy.models.backbones import load_backbone

        return load_backbone
    if name in ("build", "save_checkpoint"):
        from vitdeploy.models import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'vitdeploy.models' has no attribute {name!r}")
