"""The metric math: detection mAP, mask IoU and top-1 agreement.

Calibration uses these (through a head's ``agreement``) to compare a low-precision graph with its FP32 original (the FP32
predictions play the ground truth); ``vitdeploy eval`` uses them against real labels. Detection
AP is computed by faster-coco-eval (the COCO protocol: 101-point interpolated AP, IoU thresholds
0.50:0.05:0.95, up to 100 detections per image), never by hand, so the figures mean what a
perception engineer expects them to mean.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vitdeploy.errors import DataError
from vitdeploy.heads.results import Detections

#: How many detections per image COCO AP considers.
MAX_DETECTIONS = 100


@dataclass(frozen=True)
class DetectionScores:
    """COCO box AP of ``predictions`` against ``ground_truth``; ``None`` where undefined (no
    ground-truth boxes at all)."""

    map: float | None  # AP averaged over IoU 0.50:0.95
    map50: float | None  # AP at IoU 0.50
    map75: float | None  # AP at IoU 0.75
    images: int
    ground_truth_boxes: int
    predicted_boxes: int


def _xywh(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)


def detection_map(predictions: Sequence[Detections], ground_truth: Sequence[Detections], *,
                  num_classes: int, image_size: tuple[int, int]) -> DetectionScores:
    """COCO box AP of per-image ``predictions`` (with scores) against ``ground_truth`` (scores
    ignored). Both hold x1, y1, x2, y2 pixel boxes of images of ``image_size`` = (H, W) and class
    indices in 0..num_classes-1; the i-th prediction belongs to the i-th ground truth image."""
    from faster_coco_eval import COCO, COCOeval_faster

    if len(predictions) != len(ground_truth):
        raise DataError(f"{len(predictions)} predicted images but {len(ground_truth)} ground-truth images; "
                        "give one of each per image")
    h, w = image_size
    images = [{"id": i + 1, "height": int(h), "width": int(w)} for i in range(len(ground_truth))]
    annotations = []
    for i, gt in enumerate(ground_truth):
        for box, label in zip(_xywh(gt.boxes), gt.labels, strict=True):
            bw, bh = max(float(box[2]), 0.0), max(float(box[3]), 0.0)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(label) + 1,
                                "bbox": [float(box[0]), float(box[1]), bw, bh], "area": bw * bh, "iscrowd": 0})
    results = []
    for i, pred in enumerate(predictions):
        for box, label, score in zip(_xywh(pred.boxes), pred.labels, pred.scores, strict=True):
            results.append({"image_id": i + 1, "category_id": int(label) + 1, "score": float(score),
                            "bbox": [float(box[0]), float(box[1]), max(float(box[2]), 0.0), max(float(box[3]), 0.0)]})
    if not annotations:
        return DetectionScores(None, None, None, len(images), 0, len(results))
    if not results:
        return DetectionScores(0.0, 0.0, 0.0, len(images), len(annotations), 0)

    quiet = logging.getLogger("faster_coco_eval").debug
    gt_coco = COCO({"images": images, "annotations": annotations,
                    "categories": [{"id": c + 1, "name": str(c)} for c in range(num_classes)]}, print_function=quiet)
    dt_coco = gt_coco.loadRes(results)
    evaluator = COCOeval_faster(gt_coco, dt_coco, iouType="bbox", print_function=quiet)
    evaluator.params.maxDets = [1, 10, MAX_DETECTIONS]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = evaluator.stats

    def ap(x: float) -> float:
        return max(float(x), 0.0)  # COCO writes -1 where a category/area has no ground truth

    return DetectionScores(ap(stats[0]), ap(stats[1]), ap(stats[2]), len(images), len(annotations), len(results))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks of the same shape; two empty masks agree perfectly (1.0)."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    if a.shape != b.shape:
        raise DataError(f"mask shapes differ: {a.shape} vs {b.shape}; compare masks of the same image size")
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def mean_mask_iou(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean IoU over pairs of masks: reference/candidate (K, H, W) bool, the k-th against the
    k-th. NaN when K is 0."""
    reference = np.asarray(reference, bool)
    candidate = np.asarray(candidate, bool)
    if reference.shape != candidate.shape:
        raise DataError(f"mask stacks differ in shape: {reference.shape} vs {candidate.shape}")
    if reference.shape[0] == 0:
        return float("nan")
    r = reference.reshape(reference.shape[0], -1)
    c = candidate.reshape(candidate.shape[0], -1)
    inter = np.logical_and(r, c).sum(axis=1)
    union = np.logical_or(r, c).sum(axis=1)
    iou = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(iou.mean())


def top1_agreement(reference_logits: np.ndarray, candidate_logits: np.ndarray) -> float:
    """Fraction of rows whose arg-max class is the same: (N, C) and (N, C) logits -> 0..1."""
    r = np.asarray(reference_logits)
    c = np.asarray(candidate_logits)
    if r.shape != c.shape or r.ndim != 2 or r.shape[0] == 0:
        raise DataError(f"top-1 agreement needs two (N, C) logit arrays with N > 0; got {r.shape} and {c.shape}")
    return float(np.mean(r.argmax(axis=1) == c.argmax(axis=1)))
