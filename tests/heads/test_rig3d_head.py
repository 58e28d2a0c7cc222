"""Decoding a rig head's raw outputs into ego-frame boxes."""

import math

import numpy as np
import pytest

from vitdeploy.heads import Boxes3D
from vitdeploy.heads.rig3d import decode_boxes3d


def test_decoding_keeps_confident_queries_best_first_with_their_yaw():
    logits = np.full((1, 3, 3), -10.0, np.float32)  # 2 classes + no object
    logits[0, 0, 2] = 10.0  # query 0: no object
    logits[0, 1, 1] = 10.0  # query 1: class 1, sure
    logits[0, 2, 0] = 1.0  # query 2: class 0, p = e / (e + 1 + e^-9 ...) ~ 0.73
    logits[0, 2, 2] = 0.0
    boxes = np.zeros((1, 3, 8), np.float32)
    boxes[0, 1] = [10, -2, 0.7, 4, 2, 1.4, 1.0, 0.0]  # yaw 90 degrees
    boxes[0, 2] = [-5, 3, 0.9, 0.6, 0.6, 1.8, -2.0, -2.0]  # unnormalised sin/cos: yaw -135 degrees
    (out,) = decode_boxes3d(logits, boxes, score_threshold=0.5)
    np.testing.assert_array_equal(out.labels, [1, 0])
    assert out.scores[0] > 0.99 and out.scores[1] == pytest.approx(math.e / (math.e + 1), abs=1e-3)
    np.testing.assert_allclose(out.centers, [[10, -2, 0.7], [-5, 3, 0.9]])
    np.testing.assert_allclose(out.sizes[0], [4, 2, 1.4])
    np.testing.assert_allclose(out.yaws, [math.pi / 2, -3 * math.pi / 4], atol=1e-6)
    assert len(decode_boxes3d(logits, boxes, score_threshold=0.5, top_k=1)[0]) == 1


# ---- the head type -------------------------------------------------------------------------------------

def rig_head():
    from vitdeploy.heads import HeadSpec, make_head

    return make_head(HeadSpec("rig3d", config={"num_classes": 2, "num_queries": 3, "max_cameras": 6}),
                     class_names=("car", "pedestrian"), image_size=(64, 96))


def confident_outputs(sets: int) -> dict[str, np.ndarray]:
    """Two confident cars and one 'no object' per frame set, the cars 10 and 20 m ahead."""
    logits = np.full((sets, 3, 3), -10.0, np.float32)
    logits[:, :2, 0] = 10.0
    logits[:, 2, 2] = 10.0
    boxes = np.zeros((sets, 3, 8), np.float32)
    boxes[:, 0] = [10, 0, 0.8, 4.5, 1.9, 1.6, 0.0, 1.0]
    boxes[:, 1] = [20, -3, 0.8, 4.5, 1.9, 1.6, 0.0, 1.0]
    return {"logits": logits, "boxes3d": boxes}


def test_a_rig_head_answers_once_per_frame_set_in_the_ego_frame():
    head = rig_head()
    assert not head.per_camera and head.geometry_inputs == ("intrinsics", "cam_to_ego") and head.camera_slots == 6
    assert [(o.name, o.shape) for o in head.outputs()] == [("logits", [1, 3, 3]), ("boxes3d", [1, 3, 8])]
    boxes = head.decode(confident_outputs(1), score_threshold=0.5)
    assert isinstance(boxes, Boxes3D)  # one SetResult for the set, not a list per camera
    records = boxes.to_records(list(head.class_names))
    assert [r["center"] for r in records] == [[10.0, 0.0, 0.8], [20.0, -3.0, 0.8]]
    assert records[0]["label"] == "car" and records[0]["size"] == [4.5, 1.9, 1.6] and records[0]["yaw"] == 0.0


def test_precisions_are_compared_with_the_nuscenes_metric_on_box_centres():
    head = rig_head()
    reference = confident_outputs(4)
    score = head.compare_to(reference)
    same = score(reference)
    assert same.metric == "detection3d_map" and same.value == pytest.approx(1.0)
    assert same.details["ground_truth_boxes"] == 8 and "centre distance" in same.description
    nudged = {k: v.copy() for k, v in reference.items()}
    nudged["boxes3d"][:, :, 0] += 0.3  # 30 cm: matched at 0.5 m and above
    moved = {k: v.copy() for k, v in reference.items()}
    moved["boxes3d"][:, :, 0] += 1.5  # 1.5 m: matched only at 2 and 4 m
    assert score(nudged).value == pytest.approx(1.0)
    assert score(nudged).details["mate_m"] == pytest.approx(0.3, abs=1e-4)
    assert score(moved).value == pytest.approx(0.5)
    unsure = {k: v.copy() for k, v in reference.items()}
    unsure["logits"][:] = 0.0  # FP32 sure of nothing: no ground truth to agree with
    assert head.compare_to(unsure)(reference).value is None


def test_the_truth_scorer_maps_dataset_classes_and_scores_per_frame_set():
    from types import SimpleNamespace

    head = rig_head()
    truth = Boxes3D(np.array([[10, 0, 0.8], [20, -3, 0.8]], np.float32), np.tile([4.5, 1.9, 1.6], (2, 1)),
                    np.zeros(2), np.array([5, 5]), np.ones(2))
    scorer = head.truth_scorer(class_map=np.array([1, 1, 1, 1, 1, 0]))  # dataset class 5 is the model's car
    scorer.add(confident_outputs(2), [], [SimpleNamespace(boxes=truth)] * 2)
    scores = scorer.scores()
    assert scores.images == 2 and scores.map3d == pytest.approx(1.0)
    assert scores.mate == pytest.approx(0.0, abs=1e-6) and scores.mase == pytest.approx(0.0, abs=1e-6)
    assert scores.map is None  # no COCO box AP for 3D boxes
