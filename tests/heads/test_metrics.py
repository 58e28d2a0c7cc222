"""Task-level agreement metrics: COCO mAP through faster-coco-eval, mask IoU, top-1 agreement."""

from __future__ import annotations

import numpy as np
import pytest

from vitdeploy.errors import DataError
from vitdeploy.heads import Detections
from vitdeploy.heads.metrics import detection_map, mask_iou, mean_mask_iou, top1_agreement

SIZE = (100, 200)


def dets(boxes, labels, scores=None) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32)
    return Detections(boxes, scores, np.asarray(labels, np.int64))


GT = [dets([[10, 10, 50, 60], [100, 20, 180, 90]], [0, 2]), dets([[30, 40, 70, 80]], [1])]


def test_identical_predictions_score_one():
    s = detection_map(GT, GT, num_classes=6, image_size=SIZE)
    assert s.map == pytest.approx(1.0) and s.map50 == pytest.approx(1.0)
    assert s.ground_truth_boxes == 3 and s.predicted_boxes == 3 and s.images == 2


def test_shifted_boxes_lose_only_the_strict_iou_thresholds():
    shifted = [dets(g.boxes + np.array([6, 0, 6, 0], np.float32), g.labels) for g in GT]
    s = detection_map(shifted, GT, num_classes=6, image_size=SIZE)
    assert s.map50 == pytest.approx(1.0)
    assert 0.2 < s.map < 0.9


def test_missed_and_mislabelled_objects_cost_ap():
    missed = [dets(GT[0].boxes[:1], GT[0].labels[:1]), GT[1]]
    relabelled = [dets(GT[0].boxes, [0, 3]), GT[1]]
    assert detection_map(missed, GT, num_classes=6, image_size=SIZE).map < 0.9
    assert detection_map(relabelled, GT, num_classes=6, image_size=SIZE).map < 0.9


def test_low_scoring_false_positives_rank_below_true_positives():
    extra = [dets(np.concatenate([g.boxes, [[0, 0, 5, 5]]]), [*g.labels, 0], [*([0.9] * len(g)), 0.1]) for g in GT]
    assert detection_map(extra, GT, num_classes=6, image_size=SIZE).map == pytest.approx(1.0)


def test_no_ground_truth_is_undefined_and_no_predictions_is_zero():
    empty = [dets(np.zeros((0, 4)), []) for _ in GT]
    assert detection_map(GT, empty, num_classes=6, image_size=SIZE).map is None
    assert detection_map(empty, GT, num_classes=6, image_size=SIZE).map == 0.0
    with pytest.raises(DataError, match="one of each per image"):
        detection_map(GT[:1], GT, num_classes=6, image_size=SIZE)


def test_mask_iou():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:5] = True
    b[:5, :5] = True
    assert mask_iou(a, b) == pytest.approx(0.5)
    assert mask_iou(b, b) == 1.0 and mask_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert mean_mask_iou(np.stack([a, b]), np.stack([b, b])) == pytest.approx(0.75)
    assert np.isnan(mean_mask_iou(np.zeros((0, 4, 4)), np.zeros((0, 4, 4))))
    with pytest.raises(DataError, match="shapes differ"):
        mask_iou(a, a[:5])


def test_top1_agreement():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    cand = np.array([[0.9, 0.1], [0.0, 1.0], [1.0, 2.0], [0.0, 2.5]])
    assert top1_agreement(ref, cand) == pytest.approx(0.75)
    with pytest.raises(DataError):
        top1_agreement(ref, cand[:2])
