"""ViT encoder, heads, SAM, the zoo, checkpoint loading and pretrained backbones.

``load_backbone`` is imported on first use, so ``import vitdeploy.models`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_backbone"]


def __getattr__(name: str) -> Any:
    if name == "load_backbone":
        from vitdeploy.models.backbones import load_backbone

        return load_backbone
    raise AttributeError(f"module 'vitdeploy.models' has no attribute {name!r}")
