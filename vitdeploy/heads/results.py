"""What a head's decoding gives: per-camera results, or one result per frame set.

Most heads answer per camera (the batch axis is the camera axis) with a ``CameraResult``; a
rig-level head (one answer for the whole frame set, e.g. boxes in the ego frame) answers with a
``SetResult`` instead.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


def class_name(class_names: list[str] | tuple[str, ...], index: int) -> str:
    """The name of class ``index``, or the index as text when the bundle names no such class."""
    return class_names[index] if 0 <= index < len(class_names) else str(int(index))


@dataclass
class Detections:
    """Detections of one camera frame. boxes (K, 4) x1, y1, x2, y2 in frame pixels; scores (K,)
    in 0..1; labels (K,) class indices; masks (K, H, W) bool at frame size, or None."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def to_records(self, class_names: list[str]) -> list[dict]:
        out = []
        for box, score, label in zip(self.boxes, self.scores, self.labels, strict=True):
            out.append({"label": class_name(class_names, label), "class_id": int(label),
                        "score": round(float(score), 4), "box": [round(float(v), 1) for v in box]})
        return out


@dataclass
class CameraResult:
    """What the model found in one camera frame: ``detections`` (boxes in frame pixels, masks at
    frame size) for detection and mask heads, ``classes`` (class name, probability 0..1) for
    classification heads."""

    detections: Detections | None = None
    classes: list[tuple[str, float]] | None = None

    def to_records(self, class_names: list[str]) -> list[dict]:
        """JSON-ready: one dict per detection (label, class_id, score, box x1 y1 x2 y2 in frame
        pixels, and mask area in pixels for mask heads), or per top-k class."""
        if self.classes is not None:
            return [{"label": name, "score": round(p, 4)} for name, p in self.classes]
        if self.detections is None:
            return []
        records = self.detections.to_records(class_names)
        if self.detections.masks is not None:
            for rec, mask in zip(records, self.detections.masks, strict=True):
                rec["mask_area"] = int(mask.sum())
        return records


def detections_from_records(records: list[dict]) -> Detections:
    """The detections of one camera frame as ``CameraResult.to_records`` wrote them (a run's JSONL):
    boxes x1 y1 x2 y2 frame pixels (rounded to 0.1), scores (rounded to 1e-4), class indices; masks
    are not recorded, so none come back."""
    boxes = np.asarray([r["box"] for r in records], np.float32).reshape(-1, 4)
    scores = np.asarray([r["score"] for r in records], np.float32)
    labels = np.asarray([r["class_id"] for r in records], np.int64)
    return Detections(boxes, scores, labels)


class SetResult(abc.ABC):
    """The answer of a rig-level head (``Head.per_camera`` False) for one whole frame set."""

    @abc.abstractmethod
    def to_records(self, class_names: list[str]) -> list[dict]:
        """JSON-ready records of the set's answer (e.g. one per 3D box in the ego frame)."""
