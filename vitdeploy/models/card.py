"""``ModelCard``: what the zoo knows about a named model, enough to build it and fill a manifest.

Its own module so that the zoo and the model families that contribute cards (``models.sam``) both
import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from vitdeploy.bundle.head import HeadSpec
from vitdeploy.models.encoder import VisionTransformer

#: (encoder, *, num_classes, fused_attention) -> a head for that encoder's width, patch size and
#: attention heads, predicting ``num_classes`` classes (a Task Attention head takes ``tasks`` instead).
HeadBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelCard:
    """A named model: its ``head`` (kind, score activation, box format, config, as the manifest
    will record it), default input ``image_size`` (H, W) pixels, ``patch_size``, a ``builder``
    taking ``fused_attention``, a one-line ``description``, ``class_names``, and ``weights``: a
    file shipped in vitdeploy/models/weights/ that is loaded by default.

    ``encoder_builder`` (taking ``fused_attention``) and ``head_builder`` are the two halves of
    ``builder`` for the ViT + head models: with them the head goes on a pretrained backbone and
    predicts the user's classes (``vitdeploy.models.build``). None for models that are one piece (SAM).
    """

    name: str
    head: HeadSpec
    image_size: tuple[int, int]
    patch_size: int
    builder: Callable[..., nn.Module]
    description: str
    class_names: tuple[str, ...] = ()
    weights: str | None = None
    encoder_builder: Callable[..., VisionTransformer] | None = None
    head_builder: HeadBuilder | None = None

    def build(self, *, fused_attention: bool = True) -> nn.Module:
        return self.builder(fused_attention=fused_attention)

    def parameter_count(self) -> int:
        with torch.device("meta"):
            model = self.build()
        return sum(p.numel() for p in model.parameters())
