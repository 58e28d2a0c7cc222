"""Raw outputs of a frame set -> per-camera results, by the manifest's head type.

The decoding itself lives in ``vitdeploy.runtime.postprocess``; this module picks the decoder for
the bundle's head, names the classes from the manifest and maps boxes and masks back to each
camera's frame pixels (through the letterbox that preprocessing used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vitdeploy.bundle.manifest import Manifest
from vitdeploy.errors import BundleError
from vitdeploy.runtime.postprocess import Detections, decode_classification, decode_detr, decode_masks
from vitdeploy.runtime.preprocess import Letterbox

#: Heads `vitdeploy run` can decode.
RUNNABLE_HEADS = ("detr", "mask", "cls", "cait")


@dataclass
class CameraResult:
    """What the model found in one camera frame: ``detections`` (boxes in frame pixels, masks at
    frame size) for detr/mask heads, ``classes`` (class name, probability 0..1) for cls/cait."""

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


class Decoder:
    """Decodes a frame set's outputs for the manifest's head; ``score_threshold`` (0..1) and
    ``top_k`` filter detections and mask instances, ``top_k`` (at most 5) also classes."""

    def __init__(self, manifest: Manifest, *, score_threshold: float = 0.3, top_k: int = 100):
        if manifest.head not in RUNNABLE_HEADS:
            raise BundleError(f"`vitdeploy run` decodes {', '.join(RUNNABLE_HEADS)} heads; bundle of "
                              f"{manifest.model} has head {manifest.head!r}")
        self.head = manifest.head
        self.class_names = list(manifest.class_names)
        self.input_size = tuple(manifest.image_size)
        self.score_threshold = score_threshold
        self.top_k = top_k

    def __call__(self, outputs: dict[str, np.ndarray], letterboxes: list[Letterbox]) -> list[CameraResult]:
        """outputs: name -> (N, ...) arrays of one batch; returns N results in camera order."""
        need = {"detr": ("logits", "boxes"), "mask": ("logits", "masks")}.get(self.head, ("logits",))
        missing = [n for n in need if n not in outputs]
        if missing:
            raise BundleError(f"the {self.head} head's outputs {list(need)} are expected, the backend gave "
                              f"{sorted(outputs)}; re-export the bundle")
        if self.head == "detr":
            dets = decode_detr(outputs["logits"], outputs["boxes"], input_size=self.input_size,
                               letterboxes=letterboxes, score_threshold=self.score_threshold, top_k=self.top_k)
            return [CameraResult(detections=d) for d in dets]
        if self.head == "mask":
            dets = decode_masks(outputs["logits"], outputs["masks"], input_size=self.input_size,
                                letterboxes=letterboxes, score_threshold=self.score_threshold, top_k=self.top_k)
            return [CameraResult(detections=d) for d in dets]
        top = decode_classification(outputs["logits"], top_k=min(self.top_k, 5))
        return [CameraResult(classes=[(self._name(c), p) for c, p in cam]) for cam in top]

    def _name(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)
