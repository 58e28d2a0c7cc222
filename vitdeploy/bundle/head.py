"""What a manifest records about a bundle's head: its kind and how its outputs are to be read.

This is data only. What each kind *does* with it (decoding, agreement, ground-truth metrics,
output meanings) is ``vitdeploy.heads``; the manifest stores a ``HeadSpec`` so that a bundle made
from a user's model (softmax or sigmoid scores, one of several box formats) is read correctly by
every later stage without asking again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ScoreActivation(str, enum.Enum):
    """How class logits become scores."""

    SOFTMAX = "softmax"  # over C + 1 classes, the last one "no object" (DETR, MaskFormer)
    SIGMOID = "sigmoid"  # per class, no "no object" class (Deformable DETR, RT-DETR, DINO)


class BoxLayout(str, enum.Enum):
    CXCYWH = "cxcywh"  # centre x, centre y, width, height
    XYXY = "xyxy"  # left, top, right, bottom


class BoxUnits(str, enum.Enum):
    NORMALIZED = "normalized"  # 0..1 of the model input's width and height
    PIXELS = "pixels"  # pixels of the model input (after resize and padding)


@dataclass(frozen=True)
class BoxFormat:
    """How a box output is laid out: ``layout`` and ``units``."""

    layout: BoxLayout = BoxLayout.CXCYWH
    units: BoxUnits = BoxUnits.NORMALIZED

    @property
    def coordinates(self) -> str:
        """'cx, cy, w, h' or 'x1, y1, x2, y2'."""
        return "cx, cy, w, h" if self.layout is BoxLayout.CXCYWH else "x1, y1, x2, y2"

    @property
    def extent(self) -> str:
        """'in 0..1 of the model input' or 'in model-input pixels'."""
        return "in 0..1 of the model input" if self.units is BoxUnits.NORMALIZED else "in model-input pixels"


@dataclass
class HeadSpec:
    """A bundle's head: ``kind`` names its type in ``vitdeploy.heads.HEADS`` (detr, mask, cls, cait,
    tab, sam); ``scores`` and ``boxes`` say how its logits and boxes read, for the kinds that have
    them (None elsewhere); ``config`` holds the kind's own settings (query count, tasks, mask
    stride, ...)."""

    kind: str
    scores: ScoreActivation | None = None
    boxes: BoxFormat | None = None
    config: dict[str, Any] = field(default_factory=dict)
