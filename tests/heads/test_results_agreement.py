"""Agreement of two runs' recorded results (what `vitdeploy replay` compares): the JSONL records
back into detections, and the head's box agreement on them."""

from __future__ import annotations

import numpy as np
import pytest

from vitdeploy.bundle import HeadSpec
from vitdeploy.heads import CameraResult, Detections, make_head
from vitdeploy.heads.results import detections_from_records

CLASSES = ["car", "pedestrian"]


def dets(boxes, scores, labels):
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                      np.asarray(labels, np.int64))


def frames(*per_frame):
    return [CameraResult(detections=d) for d in per_frame]


@pytest.fixture
def head():
    return make_head(HeadSpec("detr", config={"num_classes": 2}), class_names=CLASSES, image_size=(64, 96))


def test_records_read_back_into_the_detections_they_were_written_from():
    d = dets([[1.04, 2, 30.5, 40], [5, 6, 7, 8]], [0.91234, 0.3], [1, 0])
    back = detections_from_records(CameraResult(detections=d).to_records(CLASSES))
    assert back.boxes.tolist() == [[1.0, 2.0, 30.5, 40.0], [5.0, 6.0, 7.0, 8.0]]
    assert back.scores.tolist() == pytest.approx([0.9123, 0.3]) and back.labels.tolist() == [1, 0]
    assert len(detections_from_records([])) == 0 and detections_from_records([]).boxes.shape == (0, 4)


def test_the_same_detections_agree_fully_and_lost_or_moved_boxes_less(head):
    ref = frames(dets([[10, 10, 40, 40], [50, 5, 90, 30]], [0.9, 0.8], [0, 1]),
                 dets([[0, 0, 20, 20]], [0.95], [1]))
    same = head.results_agreement(ref, ref)
    assert same.metric == "detection_map" and same.value == pytest.approx(1.0)
    lost = head.results_agreement(ref, frames(dets([[10, 10, 40, 40]], [0.9], [0]), dets([[0, 0, 20, 20]], [0.95], [1])))
    moved = head.results_agreement(ref, frames(dets([[14, 14, 44, 44], [50, 5, 90, 30]], [0.9, 0.8], [0, 1]),
                                               dets([[0, 0, 20, 20]], [0.95], [1])))
    assert 0 < lost.value < 1 and 0 < moved.value < 1
    assert lost.details["ground_truth_boxes"] == 3 and lost.details["predicted_boxes"] == 2


def test_boxes_fp32_is_unsure_of_are_no_ground_truth(head):
    unsure = frames(dets([[10, 10, 40, 40]], [0.4], [0]))  # below the 0.5 of the agreement's ground truth
    found = head.results_agreement(unsure, unsure)
    assert found.value is None and found.reason.startswith("FP32 detects nothing with score >= 0.5")


def test_kinds_without_box_agreement_say_none():
    cls = make_head(HeadSpec("cls"), class_names=CLASSES, image_size=(64, 96))
    assert cls.results_agreement(frames(), frames()) is None
