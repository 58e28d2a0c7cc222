"""Decoding raw query-head outputs: scores by the bundle's activation, boxes by its format, back into
frame pixels through the letterbox."""

import numpy as np
import pytest

from vitdeploy.bundle import BoxFormat, BoxLayout, BoxUnits, HeadSpec, ScoreActivation
from vitdeploy.heads import Letterbox, make_head
from vitdeploy.heads.decode import decode_classes, decode_masks

INPUT = (100, 200)
#: input 50,25,150,75 -> frame x2
LB = Letterbox(scale_x=0.5, scale_y=0.5, pad_x=0.0, pad_y=0.0, frame_size=(200, 400))


def detr(scores=None, boxes=None):
    return make_head(HeadSpec("detr", scores=scores, boxes=boxes), class_names=["car", "truck"], image_size=INPUT)


def test_detr_boxes_land_in_frame_pixels():
    logits = np.full((1, 3, 3), -10.0, np.float32)
    logits[0, 0, 1] = 10.0  # query 0: class 1, confident
    logits[0, 1, 2] = 10.0  # query 1: "no object"
    logits[0, 2] = 0.0        # query 2: weak (1/3 each)
    boxes = np.array([[[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1], [0.2, 0.2, 0.1, 0.1]]], np.float32)
    (result,) = detr().decode({"logits": logits, "boxes": boxes}, letterboxes=[LB], score_threshold=0.5)
    det = result.detections
    assert det.labels.tolist() == [1]
    np.testing.assert_allclose(det.boxes[0], [100, 50, 300, 150])
    assert result.to_records(["car", "truck"])[0]["label"] == "truck"


@pytest.mark.parametrize(("box_format", "box"), [
    (BoxFormat(BoxLayout.CXCYWH, BoxUnits.NORMALIZED), [0.5, 0.5, 0.5, 0.5]),
    (BoxFormat(BoxLayout.XYXY, BoxUnits.NORMALIZED), [0.25, 0.25, 0.75, 0.75]),
    (BoxFormat(BoxLayout.CXCYWH, BoxUnits.PIXELS), [100, 50, 100, 50]),
    (BoxFormat(BoxLayout.XYXY, BoxUnits.PIXELS), [50, 25, 150, 75]),
])
def test_every_box_format_gives_the_same_frame_box(box_format, box):
    logits = np.array([[[-4.0, 4.0]]], np.float32)  # sigmoid: no "no object" class
    (result,) = detr(ScoreActivation.SIGMOID, box_format).decode(
        {"logits": logits, "boxes": np.array([[box]], np.float32)}, letterboxes=[LB], score_threshold=0.5)
    np.testing.assert_allclose(result.detections.boxes[0], [100, 50, 300, 150], rtol=1e-6)
    assert result.detections.labels.tolist() == [1]
    assert result.detections.scores[0] == pytest.approx(1 / (1 + np.exp(-4.0)))


def test_sigmoid_scores_have_no_no_object_class():
    # Two classes, both likely: softmax over [a, b] would halve them; sigmoid keeps each near 1.
    logits = np.array([[[5.0, 5.0], [-5.0, -5.0]]], np.float32)
    boxes = np.full((1, 2, 4), 0.5, np.float32)
    (sig,) = detr(ScoreActivation.SIGMOID).decode({"logits": logits, "boxes": boxes}, score_threshold=0.9)
    # per (query, class) pair, as Deformable DETR / RT-DETR / DINO post-process: query 0 is both classes
    assert sorted(sig.detections.labels.tolist()) == [0, 1] and min(sig.detections.scores) > 0.99
    # read as softmax, the last column would be "no object" and class 0 only 0.5
    (soft,) = detr(ScoreActivation.SOFTMAX).decode({"logits": logits, "boxes": boxes}, score_threshold=0.9)
    assert len(soft.detections) == 0


def test_masks_are_upsampled_to_the_frame():
    logits = np.array([[[10.0, -10.0]]], np.float32)
    masks = np.full((1, 1, 4, 4), -5.0, np.float32)
    masks[0, 0, :2, :2] = 5.0
    (det,) = decode_masks(logits, masks, activation=ScoreActivation.SOFTMAX, input_size=(16, 16), score_threshold=0.5)
    assert det.masks.shape == (1, 16, 16)
    assert det.masks[0, :6, :6].all() and not det.masks[0, 10:, 10:].any()


def test_classification_top_k():
    top = decode_classes(np.array([[0.0, 3.0, 1.0]], np.float32), top_k=2)
    assert [c for c, _ in top[0]] == [1, 2]


def test_sigmoid_keeps_the_top_k_query_class_pairs_best_first():
    logits = np.array([[[3.0, 1.0], [2.0, -9.0], [-9.0, 4.0]]], np.float32)
    boxes = np.tile(np.arange(3, dtype=np.float32)[None, :, None] / 10 + 0.2, (1, 1, 4))
    (result,) = detr(ScoreActivation.SIGMOID).decode({"logits": logits, "boxes": boxes}, score_threshold=0.5, top_k=3)
    # pairs by score: (q2, c1) 4.0, (q0, c0) 3.0, (q1, c0) 2.0, (q0, c1) 1.0 -> the best three
    assert result.detections.labels.tolist() == [1, 0, 0]
    np.testing.assert_allclose(result.detections.scores, 1 / (1 + np.exp(-np.array([4.0, 3.0, 2.0]))), rtol=1e-6)
    # query q's box is cx = cy = w = h = 0.2 + q / 10, so its left edge is (0.2 + q / 10) / 2 of the width
    np.testing.assert_allclose(result.detections.boxes[:, 0], np.array([0.4, 0.2, 0.3]) / 2 * INPUT[1], rtol=1e-5)


@pytest.mark.parametrize("activation", [ScoreActivation.SOFTMAX, ScoreActivation.SIGMOID])
def test_boxes_decoded_over_all_cameras_at_once_match_camera_by_camera(activation):
    """decode_boxes is vectorised over cameras; the detections, their order (ties included) and
    the boxes are exactly those of decoding each camera on its own."""
    from vitdeploy.heads.decode import class_scores, decode_boxes, select, to_xyxy_pixels

    rng = np.random.default_rng(0)
    n, q, c = 6, 50, 5
    logits = rng.normal(0, 2, (n, q, c)).astype(np.float32)
    logits[2, 10:20] = logits[2, 10]  # ties: equal scores keep query order
    logits[4] = -20.0  # a camera with nothing above the threshold
    boxes = rng.uniform(0, 1, (n, q, 4)).astype(np.float32)
    fmt = BoxFormat(BoxLayout.CXCYWH, BoxUnits.NORMALIZED)
    lbs = [Letterbox(0.5 + 0.1 * i, 0.4 + 0.05 * i, 3.0 * i, 7.0 - i, (300 + i, 500 - i)) for i in range(n)]
    got = decode_boxes(logits, boxes, activation=activation, box_format=fmt, input_size=INPUT, letterboxes=lbs,
                       score_threshold=0.3, top_k=12)
    scores = class_scores(logits, activation)
    for i in range(n):
        keep, best, labels = select(scores[i], activation=activation, score_threshold=0.3, top_k=12)
        xyxy = lbs[i].to_frame(to_xyxy_pixels(boxes[i, keep], fmt, input_size=INPUT)).reshape(-1, 4)
        assert np.array_equal(got[i].boxes, xyxy) and got[i].boxes.dtype == xyxy.dtype
        assert np.array_equal(got[i].scores, best.astype(np.float32))
        assert np.array_equal(got[i].labels, labels.astype(np.int64))
    assert len(got[4]) == 0 and len(got[2]) == 12
