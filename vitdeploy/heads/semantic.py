"""Semantic-segmentation mIoU: per-class intersection and union summed over a dataset.

The standard definition (as in Cityscapes or ADE20K scoring): for each class c, IoU_c = sum of
|pred = c AND gt = c| over all images / sum of |pred = c OR gt = c|; mIoU is the mean of IoU_c over
the classes that occur (union > 0) in the ground truth or the predictions. Pixels labelled with no
class (``BACKGROUND``) belong to no IoU_c, but a class predicted on them widens that class's union.
Summing before dividing weights images by their pixels, so one empty frame does not count as a
perfect or a failed class.
"""

from __future__ import annotations

import numpy as np

from vitdeploy.errors import DataError

#: The class index of a pixel that belongs to no class in a semantic map.
BACKGROUND = 255


class SemanticIoU:
    """Accumulates per-class intersections and unions of (H, W) class-index maps with values in
    0..num_classes-1 or ``BACKGROUND``."""

    def __init__(self, num_classes: int):
        if not 0 < num_classes < BACKGROUND:
            raise DataError(f"semantic IoU handles 1..{BACKGROUND - 1} classes, got {num_classes}")
        self.num_classes = num_classes
        self.intersection = np.zeros(num_classes, np.int64)
        self.union = np.zeros(num_classes, np.int64)

    def add(self, predicted: np.ndarray, ground_truth: np.ndarray) -> None:
        if predicted.shape != ground_truth.shape:
            raise DataError(f"semantic maps differ in shape: predicted {predicted.shape}, ground truth "
                            f"{ground_truth.shape}")
        n = self.num_classes + 1  # the last bin collects background (and anything out of range)
        p = np.where(predicted < self.num_classes, predicted, self.num_classes).astype(np.int64).ravel()
        g = np.where(ground_truth < self.num_classes, ground_truth, self.num_classes).astype(np.int64).ravel()
        confusion = np.bincount(g * n + p, minlength=n * n).reshape(n, n)[: self.num_classes, : self.num_classes]
        both = np.diag(confusion)
        pred_count = np.bincount(p, minlength=n)[: self.num_classes]
        gt_count = np.bincount(g, minlength=n)[: self.num_classes]
        self.intersection += both
        self.union += pred_count + gt_count - both

    def per_class(self) -> np.ndarray:
        """(num_classes,) IoU of each class, 0..1; NaN for a class that never occurred."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.union > 0, self.intersection / np.maximum(self.union, 1), np.nan)

    def mean(self) -> float | None:
        """mIoU over the classes that occurred; None when none did."""
        iou = self.per_class()
        valid = iou[~np.isnan(iou)]
        return float(valid.mean()) if valid.size else None


def instances_to_semantic(masks: np.ndarray, labels: np.ndarray, scores: np.ndarray, *,
                          shape: tuple[int, int], min_score: float) -> np.ndarray:
    """Instance masks (K, H, W) bool with class ``labels`` and ``scores`` -> an (H, W) uint8 class
    map: instances below ``min_score`` are left out, and where instances overlap the higher score
    wins (painted last)."""
    semantic = np.full(shape, BACKGROUND, np.uint8)
    for k in np.argsort(scores, kind="stable"):
        if scores[k] >= min_score:
            semantic[masks[k]] = labels[k]
    return semantic
