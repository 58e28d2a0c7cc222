"""nuScenes-style 3D detection scores on hand-computed cases.

tools/crosscheck_nuscenes_metric.py compares the same code with nuscenes-devkit itself (it needs
numpy<2, so it runs in its own venv); these tests pin the definitions without it.
"""

import math

import numpy as np
import pytest

from vitdeploy.data.boxes3d import Boxes3D
from vitdeploy.errors import DataError
from vitdeploy.heads.metrics3d import (
    Detection3DConfig,
    aligned_iou,
    detection3d_scores,
    yaw_difference,
)

CLASSES = ("car", "truck", "pedestrian", "cyclist", "traffic_cone", "traffic_light")
CONFIG = Detection3DConfig(class_names=CLASSES)


def boxes(*rows, scores=None) -> Boxes3D:
    """rows: (label, x, y, yaw, (l, w, h)); z = h / 2."""
    if not rows:
        return Boxes3D.empty()
    labels = np.array([r[0] for r in rows])
    sizes = np.array([r[4] if len(r) > 4 else (4.0, 2.0, 1.5) for r in rows], float)
    centers = np.array([(r[1], r[2], s[2] / 2) for r, s in zip(rows, sizes, strict=True)])
    return Boxes3D(centers, sizes, np.array([r[3] for r in rows], float), labels,
                   np.ones(len(rows)) if scores is None else np.asarray(scores, float))


def test_perfect_predictions_score_one_and_no_error():
    gt = [boxes((0, 10, 2, 0.3), (2, -5, 4, 1.0, (0.5, 0.5, 1.8))), boxes((0, 30, -3, -2.0), (4, 8, -4, 0.0))]
    s = detection3d_scores(gt, gt, config=CONFIG)
    assert s.map == pytest.approx(1.0)
    assert (s.mate, s.mase, s.maoe) == pytest.approx((0.0, 0.0, 0.0))
    assert s.per_class["traffic_cone"].aoe is None  # a cone's heading is not scored
    assert s.per_class["truck"].ap is None and s.per_class["truck"].ground_truth == 0


def test_one_offset_prediction_matches_only_at_the_looser_thresholds():
    gt = [boxes((0, 10, 0, 0.0, (4.0, 2.0, 1.5)))]
    pred = [boxes((0, 11.2, 0.9, 1.5 * math.pi, (2.0, 2.0, 1.5)), scores=[0.6])]  # 1.5 m away
    car = detection3d_scores(pred, gt, config=CONFIG).per_class["car"]
    assert car.ap_per_threshold == {0.5: 0.0, 1.0: 0.0, 2.0: pytest.approx(1.0), 4.0: pytest.approx(1.0)}
    assert car.ap == pytest.approx(0.5)
    assert car.ate == pytest.approx(1.5)
    assert car.ase == pytest.approx(0.5)  # aligned IoU = (2*2*1.5) / (4*2*1.5 + 2*2*1.5 - 2*2*1.5) = 0.5
    assert car.aoe == pytest.approx(math.pi / 2)  # 0 vs 270 degrees is 90 degrees apart


def test_average_precision_follows_the_nuscenes_curve():
    # Two cars; predictions by score: a false positive (0.9), then both cars (0.8, 0.7).
    # precision/recall after each: (0, 0), (1/2, 1/2), (2/3, 1). nuScenes samples precision at
    # recall 0, 0.01, ..., 1 by linear interpolation: p(r) = r up to 0.5, 0.5 + (r - 0.5) / 3 after.
    # AP = sum over r = 0.11..1.00 of (p(r) - 0.1), divided by 90 points and by 0.9:
    # sum_{j=1..40} j/100 = 8.2, plus sum_{j=1..50} (0.4 + j/300) = 24.25 -> 32.45 / 81.
    gt = [boxes((0, 10, 0, 0.0), (0, 20, 5, 0.0))]
    pred = [boxes((0, -30, 0, 0.0), (0, 10.1, 0, 0.0), (0, 20, 5.2, 0.0), scores=[0.9, 0.8, 0.7])]
    car = detection3d_scores(pred, gt, config=CONFIG).per_class["car"]
    assert car.ap_per_threshold[4.0] == pytest.approx(32.45 / 81)
    # ATE: the running mean of the matches' errors (0.1, then 0.15) follows the confidence, which
    # falls linearly from 0.8 at recall 0.5 to 0.7 at recall 1: 0.1 up to recall 0.5, then
    # 0.1 + 0.1 (r - 0.5). Mean over r = 0.11..1.00: (40 * 0.1 + 50 * 0.1 + 0.1 * 12.75) / 90.
    assert car.ate == pytest.approx(10.275 / 90)


def test_equal_scores_go_to_the_later_box_first_as_in_nuscenes():
    gt = [boxes((0, 10, 0, 0.0))]
    pred = [boxes((0, 10.4, 0, 0.0), (0, 10.1, 0, 0.0), scores=[0.5, 0.5])]
    car = detection3d_scores(pred, gt, config=CONFIG).per_class["car"]
    assert car.ate == pytest.approx(0.1)  # the second box took the car; the first is a false positive


def test_matching_is_greedy_nearest_within_class_and_frame_set():
    gt = [boxes((0, 10, 0, 0.0), (0, 13, 0, 0.0)), boxes((0, 10, 0, 0.0))]
    # frame set 0: one prediction nearer the second car; a pedestrian on the first car is not a car
    pred = [boxes((0, 12.5, 0, 0.0), (2, 10, 0, 0.0), scores=[0.9, 0.9]), boxes()]
    s = detection3d_scores(pred, gt, config=CONFIG)
    car = s.per_class["car"]
    assert car.ate == pytest.approx(0.5)
    assert car.ground_truth == 3 and car.predictions == 1
    assert s.per_class["pedestrian"].ap is None  # no pedestrian in the ground truth
    assert s.map == pytest.approx(car.ap)


def test_boxes_beyond_the_class_range_are_not_scored():
    gt = [boxes((2, 45, 0, 0.0), (0, 45, 0, 0.0))]  # pedestrians count to 40 m, cars to 50 m
    s = detection3d_scores([boxes()], gt, config=CONFIG)
    assert s.per_class["pedestrian"].ground_truth == 0 and s.per_class["car"].ground_truth == 1
    assert s.map == 0.0 and s.mate == 1.0  # nothing found: AP 0 and the worst TP errors


def test_helpers_and_bad_input():
    assert yaw_difference(0.1, 2 * math.pi - 0.1) == pytest.approx(0.2)
    assert yaw_difference(0.0, math.pi, period=math.pi) == pytest.approx(0.0)
    assert aligned_iou(np.array([2.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0])) == pytest.approx(0.5)
    with pytest.raises(DataError, match="one of each per frame set"):
        detection3d_scores([boxes()], [], config=CONFIG)
    crowded = Boxes3D(np.zeros((501, 3)), np.ones((501, 3)), np.zeros(501), np.zeros(501, np.int64), np.ones(501))
    with pytest.raises(DataError, match="at most 500"):
        detection3d_scores([crowded], [boxes()], config=CONFIG)
