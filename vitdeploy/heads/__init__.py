"""The head type: what a bundle's outputs mean and how every stage reads them (DESIGN.md).

``HEADS`` maps each head kind to its class; ``head_for(manifest)`` is the head of a bundle. A new
head kind, or a user's model whose outputs follow one kind, touches this package only. This is a
contract room: it imports ``vitdeploy.bundle``, ``vitdeploy.errors`` and numpy (OpenCV and
faster-coco-eval where they are used).
"""

from __future__ import annotations

from collections.abc import Sequence

from vitdeploy.bundle.head import BoxFormat, BoxLayout, BoxUnits, HeadSpec, ScoreActivation
from vitdeploy.bundle.manifest import Manifest
from vitdeploy.errors import BundleError
from vitdeploy.heads.agreement import TaskAgreement
from vitdeploy.heads.base import Decoded, Head
from vitdeploy.heads.boxes3d import Boxes3D
from vitdeploy.heads.classify import CaitClassificationHead, ClassificationHead, MultiTaskClassificationHead
from vitdeploy.heads.detr import DetectionHead, InstanceMaskHead
from vitdeploy.heads.letterbox import Letterbox
from vitdeploy.heads.results import CameraResult, Detections, SetResult
from vitdeploy.heads.rig3d import Rig3dHead
from vitdeploy.heads.sam import SegmentAnythingHead
from vitdeploy.heads.truth import EvalScores, TruthScorer

#: Head kind -> its type. The kind is what a manifest's ``head.kind`` and a zoo card name.
HEADS: dict[str, type[Head]] = {
    "detr": DetectionHead,
    "mask": InstanceMaskHead,
    "cls": ClassificationHead,
    "cait": CaitClassificationHead,
    "tab": MultiTaskClassificationHead,
    "sam": SegmentAnythingHead,
    "rig3d": Rig3dHead,
}

__all__ = [
    "HEADS",
    "BoxFormat",
    "BoxLayout",
    "BoxUnits",
    "Boxes3D",
    "CameraResult",
    "Decoded",
    "Detections",
    "EvalScores",
    "Head",
    "HeadSpec",
    "Letterbox",
    "ScoreActivation",
    "SetResult",
    "TaskAgreement",
    "TruthScorer",
    "head_for",
    "make_head",
]


def make_head(spec: HeadSpec, *, class_names: Sequence[str] = (), image_size: tuple[int, int]) -> Head:
    """The head of kind ``spec.kind``; an unknown kind is a ``BundleError`` naming the known ones."""
    head_type = HEADS.get(spec.kind)
    if head_type is None:
        raise BundleError(f"unknown head kind {spec.kind!r}; vitdeploy knows {', '.join(HEADS)}")
    return head_type(spec, class_names=class_names, image_size=image_size)


def head_for(manifest: Manifest) -> Head:
    """The head of a bundle, as its manifest records it."""
    return make_head(manifest.head, class_names=manifest.class_names, image_size=tuple(manifest.image_size))
