"""Scoring a head's decoded outputs against real labels (``vitdeploy eval``).

Detection AP is COCO AP (faster-coco-eval, through ``heads.metrics.detection_map``) with boxes in
frame pixels; instance-mask heads add semantic mIoU of their masks; classification is top-1
accuracy. Each head kind hands out the scorer that fits it (``Head.truth_scorer``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vitdeploy.errors import DataError
from vitdeploy.heads.letterbox import Letterbox
from vitdeploy.heads.metrics import MAX_DETECTIONS, detection_map
from vitdeploy.heads.results import Detections
from vitdeploy.heads.semantic import SemanticIoU, instances_to_semantic

#: Detections kept for AP: COCO AP ranks every detection, so only near-certain "no object" is cut.
SCORE_FLOOR = 0.001
#: Mask instances at or above this score make the predicted semantic map (mIoU).
MASK_SCORE = 0.5


class LabelledImage(Protocol):
    """One labelled image as a dataset gives it (``vitdeploy.evaluation.datasets.EvalImage``):
    ``image`` (H, W, 3) uint8; ``boxes`` (K, 4) x1 y1 x2 y2 frame pixels and ``labels`` (K,) dataset
    class indices; ``semantic`` (H, W) class map or None; ``label`` the class of a classification
    image."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    semantic: np.ndarray | None
    label: int


@dataclass(frozen=True)
class EvalScores:
    """One configuration's accuracy: COCO box AP over IoU 0.50:0.95 (``map``), at 0.50 and 0.75;
    semantic mIoU (mask heads); top-1 accuracy (classification heads); for rig-level 3D heads
    nuScenes mAP over centre distances 0.5/1/2/4 m (``map3d``) with the true-positive errors at 2 m:
    ``mate`` metres, ``mase`` 1 - IoU, ``maoe`` radians (``vitdeploy.heads.metrics3d``). Scores are
    0..1; None where the head or the data does not give it (e.g. no ground-truth boxes, no masks)."""

    images: int
    map: float | None = None
    map50: float | None = None
    map75: float | None = None
    miou: float | None = None
    top1: float | None = None
    map3d: float | None = None
    mate: float | None = None
    mase: float | None = None
    maoe: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"images": self.images, "map": self.map, "map50": self.map50, "map75": self.map75,
                "miou": self.miou, "top1": self.top1, "map3d": self.map3d, "mate": self.mate, "mase": self.mase,
                "maoe": self.maoe}


class TruthScorer(abc.ABC):
    """Accumulates one configuration's predictions against the ground truth, batch by batch."""

    def __init__(self, *, class_map: np.ndarray):
        self.class_map = np.asarray(class_map, np.int64)  # dataset class index -> model class index
        self.images = 0

    @abc.abstractmethod
    def add(self, outputs: dict[str, np.ndarray], letterboxes: Sequence[Letterbox],
            images: Sequence[LabelledImage]) -> None:
        """One batch: the backend's raw ``outputs`` for ``images`` (in order), preprocessed with
        ``letterboxes``."""

    @abc.abstractmethod
    def scores(self) -> EvalScores: ...


class DetectionTruth(TruthScorer):
    """COCO box AP (and semantic mIoU of mask instances with ``semantic``); ``decode(outputs,
    letterboxes, score_threshold=, top_k=)`` gives per-image detections in frame pixels."""

    def __init__(self, *, num_classes: int, class_map: np.ndarray, decode: Callable[..., list[Detections]],
                 semantic: bool = False):
        super().__init__(class_map=class_map)
        self.num_classes = num_classes
        self.decode = decode
        self.semantic = SemanticIoU(num_classes) if semantic else None
        self.predictions: list[Detections] = []
        self.ground_truth: list[Detections] = []
        self.frame_sizes: list[tuple[int, int]] = []

    def add(self, outputs: dict[str, np.ndarray], letterboxes: Sequence[Letterbox],
            images: Sequence[LabelledImage]) -> None:
        preds = self.decode(outputs, letterboxes, score_threshold=SCORE_FLOOR, top_k=MAX_DETECTIONS)
        gts = [Detections(im.boxes, np.ones(len(im.labels), np.float32), self.class_map[im.labels]) for im in images]
        for pred, im in zip(preds, images, strict=True):
            if self.semantic is not None and im.semantic is not None and pred.masks is not None:
                gt_map = np.where(im.semantic < len(self.class_map),
                                  self.class_map[np.minimum(im.semantic, len(self.class_map) - 1)], im.semantic)
                self.semantic.add(instances_to_semantic(pred.masks, pred.labels, pred.scores,
                                                        shape=im.semantic.shape, min_score=MASK_SCORE),
                                  gt_map.astype(np.uint8))
            pred.masks = None  # boxes are all AP needs; full-frame masks would pile up
        self.add_detections(preds, gts, frame_sizes=[im.image.shape[:2] for im in images])

    def add_detections(self, predictions: list[Detections], ground_truth: list[Detections], *,
                       frame_sizes: list[tuple[int, int]] | None = None) -> None:
        """Decoded predictions (scored boxes, x1 y1 x2 y2 frame pixels, model class indices) and
        the ground truth of the same images, in order."""
        if len(predictions) != len(ground_truth):
            raise DataError(f"{len(predictions)} predicted images for {len(ground_truth)} ground-truth images")
        self.predictions += predictions
        self.ground_truth += ground_truth
        self.frame_sizes += frame_sizes or [(0, 0)] * len(predictions)
        self.images += len(predictions)

    def scores(self) -> EvalScores:
        # COCO box AP does not depend on the image size it records; the largest frame is given
        size = max(self.frame_sizes, default=(1, 1))
        d = detection_map(self.predictions, self.ground_truth, num_classes=self.num_classes,
                          image_size=(max(size[0], 1), max(size[1], 1)))
        return EvalScores(images=self.images, map=d.map, map50=d.map50, map75=d.map75,
                          miou=self.semantic.mean() if self.semantic is not None else None)


class ClassificationTruth(TruthScorer):
    """Top-1 accuracy of the ``logits`` output against each image's ``label``."""

    def __init__(self, *, class_map: np.ndarray):
        super().__init__(class_map=class_map)
        self.correct = 0

    def add(self, outputs: dict[str, np.ndarray], letterboxes: Sequence[Letterbox],
            images: Sequence[LabelledImage]) -> None:
        best = np.asarray(outputs["logits"]).argmax(axis=-1)
        for predicted, im in zip(best, images, strict=True):
            self.correct += int(predicted == self.class_map[im.label])
            self.images += 1

    def scores(self) -> EvalScores:
        return EvalScores(images=self.images, top1=self.correct / self.images if self.images else None)
