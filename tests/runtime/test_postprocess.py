import numpy as np

from vitdeploy.runtime.postprocess import decode_classification, decode_detr, decode_masks
from vitdeploy.runtime.preprocess import Letterbox


def test_detr_boxes_land_in_frame_pixels():
    logits = np.full((1, 3, 3), -10.0, np.float32)
    logits[0, 0, 1] = 10.0  # query 0: class 1, confident
    logits[0, 1, 2] = 10.0  # query 1: "no object"
    logits[0, 2] = 0.0        # query 2: weak (1/3 each)
    boxes = np.array([[[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1], [0.2, 0.2, 0.1, 0.1]]], np.float32)
    lb = Letterbox(scale_x=0.5, scale_y=0.5, pad_x=0.0, pad_y=0.0, frame_size=(200, 400))
    (det,) = decode_detr(logits, boxes, input_size=(100, 200), letterboxes=[lb], score_threshold=0.5)
    assert det.labels.tolist() == [1]
    np.testing.assert_allclose(det.boxes[0], [100, 50, 300, 150])  # input 50,25,150,75 -> frame x2
    assert det.to_records(["car", "truck"])[0]["label"] == "truck"


def test_masks_are_upsampled_to_the_frame():
    logits = np.array([[[10.0, -10.0]]], np.float32)
    masks = np.full((1, 1, 4, 4), -5.0, np.float32)
    masks[0, 0, :2, :2] = 5.0
    (det,) = decode_masks(logits, masks, input_size=(16, 16), score_threshold=0.5)
    assert det.masks.shape == (1, 16, 16)
    assert det.masks[0, :6, :6].all() and not det.masks[0, 10:, 10:].any()


def test_classification_top_k():
    top = decode_classification(np.array([[0.0, 3.0, 1.0]], np.float32), top_k=2)
    assert [c for c, _ in top[0]] == [1, 2]
