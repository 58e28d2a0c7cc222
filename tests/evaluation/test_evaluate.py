"""`vitdeploy eval` scoring checked by hand: perfect and shifted boxes, mIoU, top-1, and the
letterbox mapping from model input back to frame pixels (a fake backend that answers perfectly)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from vitdeploy.bundle import HeadSpec, Precision
from vitdeploy.errors import DataError
from vitdeploy.evaluation.datasets import BACKGROUND, EvalImage, image_folder_dataset, synthetic_dataset
from vitdeploy.evaluation.evaluate import check_compatible, evaluate_backends
from vitdeploy.heads import Detections, make_head
from vitdeploy.heads.semantic import SemanticIoU, instances_to_semantic
from vitdeploy.heads.truth import DetectionTruth
from vitdeploy.runtime.backends.base import Backend
from vitdeploy.runtime.configs import Configuration
from vitdeploy.runtime.preprocess import resize_frame

DRIVING = ("car", "truck", "pedestrian", "cyclist", "traffic_cone", "traffic_light")


def dets(boxes, labels, scores=None) -> Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32)
    return Detections(boxes, scores, np.asarray(labels, np.int64))


def scorer() -> DetectionTruth:
    """The ground-truth scorer of a detr head with the six driving classes."""
    head = make_head(HeadSpec("detr"), class_names=DRIVING, image_size=(64, 96))
    return head.truth_scorer(class_map=np.arange(len(DRIVING)))


# ---- hand-checked detection cases --------------------------------------------------------------

GT = [dets([[100, 100, 200, 200], [10, 20, 30, 60]], [0, 2]), dets([[40, 20, 120, 100]], [1])]


def test_perfect_predictions_score_one():
    s = scorer()
    s.add_detections(GT, GT)
    got = s.scores()
    assert (got.map, got.map50, got.map75, got.images) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0), 2)


def test_boxes_shifted_to_iou_0_6_pass_three_of_ten_thresholds():
    # Shift every box right by a quarter of its width: overlap 0.75 w, union 1.25 w, IoU = 0.6 exactly
    # (the widths 100, 20 and 80 make every coordinate exact in float32). COCO averages AP over
    # the IoU thresholds 0.50, 0.55, ..., 0.95 and a detection matches at IoU >= threshold, so each
    # box is a hit at 0.50, 0.55 and 0.60 (AP 1.0) and a miss at the seven above (AP 0.0):
    # mAP@[.5:.95] = 3/10 = 0.3, mAP@.5 = 1.0, mAP@.75 = 0.0.
    shifted = []
    for g in GT:
        w = g.boxes[:, 2] - g.boxes[:, 0]
        shifted.append(dets(g.boxes + np.stack([w / 4, 0 * w, w / 4, 0 * w], axis=1), g.labels))
    s = scorer()
    s.add_detections(shifted, GT)
    got = s.scores()
    assert got.map50 == pytest.approx(1.0) and got.map75 == 0.0
    assert got.map == pytest.approx(0.3)


def test_a_missed_object_costs_recall():
    s = scorer()
    s.add_detections([dets(GT[0].boxes[:1], GT[0].labels[:1]), GT[1]], GT)
    # class 2 (the only box of its class) is never found: AP 0 for it, 1 for the other two classes
    assert s.scores().map == pytest.approx(2 / 3)


# ---- segmentation and classification -------------------------------------------------------------

def test_semantic_iou_by_hand():
    gt = np.full((4, 4), BACKGROUND, np.uint8)
    gt[:2, :2] = 0  # 4 pixels of class 0
    gt[2:, 2:] = 1  # 4 pixels of class 1
    pred = np.full((4, 4), BACKGROUND, np.uint8)
    pred[:2, :1] = 0  # 2 of the 4 class-0 pixels
    pred[2:, 1:] = 1  # the 4 class-1 pixels and 2 background pixels
    m = SemanticIoU(3)
    m.add(pred, gt)
    iou = m.per_class()
    assert iou[0] == pytest.approx(2 / 4) and iou[1] == pytest.approx(4 / 6) and np.isnan(iou[2])
    assert m.mean() == pytest.approx((0.5 + 4 / 6) / 2)  # class 2 never occurred: not in the mean
    with pytest.raises(DataError, match="differ in shape"):
        m.add(pred, gt[:2])


def test_instances_to_semantic_lets_the_higher_score_win():
    masks = np.zeros((3, 2, 2), bool)
    masks[0, 0] = True
    masks[1, :, 0] = True
    masks[2] = True
    out = instances_to_semantic(masks, np.array([4, 5, 1]), np.array([0.9, 0.6, 0.1]), shape=(2, 2), min_score=0.5)
    assert out.tolist() == [[4, 4], [5, BACKGROUND]]  # instance 2 is below the score floor


# ---- the whole evaluation with backends that answer perfectly ----------------------------------

class ScriptedBackend(Backend):
    """Returns pre-computed outputs, one entry per call, after the usual feed validation."""

    name = "scripted"

    def __init__(self, spec, outputs):
        super().__init__(inputs=[spec], outputs=[], dim_ranges={"cameras": (1, 8)})
        self.script = list(outputs)

    def _infer(self, feed):
        return self.script.pop(0)


def perfect_detr(images: list[EvalImage], pre, queries: int = 40) -> list[dict]:
    """DETR outputs that find exactly the ground truth: boxes taken through the letterbox into
    normalised model-input cx, cy, w, h; logits certain of the class, or of 'no object'."""
    h, w = pre.image_size
    logits = np.full((len(images), queries, 7), -10.0, np.float32)
    logits[:, :, 6] = 10.0
    boxes = np.full((len(images), queries, 4), 0.5, np.float32)
    for i, im in enumerate(images):
        _, lb = resize_frame(im.image, pre)
        for q, (box, label) in enumerate(zip(im.boxes, im.labels, strict=True)):
            x1, x2 = box[[0, 2]] * lb.scale_x + lb.pad_x
            y1, y2 = box[[1, 3]] * lb.scale_y + lb.pad_y
            boxes[i, q] = [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
            logits[i, q, 6], logits[i, q, label] = -10.0, 10.0
    return [{"logits": logits, "boxes": boxes}]


@pytest.fixture(scope="module")
def manifest(exported):
    return exported("vit-test-detr").manifest


def test_perfect_detections_through_the_letterbox_score_one(manifest):
    # frames of another aspect than the 64x96 input: padding above and below the image
    pre = dataclasses.replace(manifest.preprocessing, resize="letterbox")
    m = dataclasses.replace(manifest, preprocessing=pre)
    data = synthetic_dataset(image_size=(96, 112), frames=6)
    images = list(data.images())
    assert sum(len(im.labels) for im in images) >= 6  # enough objects for the case to mean something
    spec = m.graph().inputs[0]
    config = Configuration("scripted", Precision.FP32)
    results = evaluate_backends({config: ScriptedBackend(spec, perfect_detr(images, pre))}, data, m, batch=6)
    got = results[config].scores
    assert got.images == 6 and got.map == pytest.approx(1.0) and got.map50 == pytest.approx(1.0)


def test_perfect_masks_score_miou_one(manifest):
    m = dataclasses.replace(manifest, head=HeadSpec("mask"))
    data = synthetic_dataset(image_size=tuple(m.image_size), frames=4)
    images = list(data.images(masks=True))
    assert sum(len(np.unique(im.semantic)) - 1 for im in images) >= 3  # objects of some classes are in view
    logits = np.full((4, 40, 7), -10.0, np.float32)
    logits[:, :, 6] = 10.0
    masks = np.full((4, 40, *m.image_size), -5.0, np.float32)  # mask logits at the input size (stride 1)
    for i, im in enumerate(images):
        for q, label in enumerate(np.unique(im.semantic[im.semantic != BACKGROUND])):
            logits[i, q, 6], logits[i, q, label] = -10.0, 10.0
            masks[i, q][im.semantic == label] = 5.0
    config = Configuration("scripted", Precision.FP32)
    backend = ScriptedBackend(m.graph().inputs[0], [{"logits": logits, "masks": masks}])
    got = evaluate_backends({config: backend}, data, m, batch=4)[config].scores
    assert got.miou == pytest.approx(1.0)


def test_top1_on_an_image_folder(manifest, tmp_path):
    m = dataclasses.replace(manifest, head=HeadSpec("cls"), class_names=["dark", "light"])
    for name, value in (("dark", 10), ("light", 245)):
        (tmp_path / name).mkdir()
        for k in range(2):
            cv2.imwrite(str(tmp_path / name / f"{k}.png"), np.full((20, 30, 3), value, np.uint8))
    data = image_folder_dataset(tmp_path)
    assert data.class_names == ("dark", "light") and len(data) == 4

    class Brightness(Backend):
        """Logits from the mean normalised pixel: says 'light' for bright images."""

        name = "brightness"

        def _infer(self, feed):
            v = feed["images"].mean(axis=(1, 2, 3))
            return {"logits": np.stack([-v, v], axis=1)}

    spec = m.graph().inputs[0]
    config = Configuration("brightness", Precision.FP32)
    backend = Brightness(inputs=[spec], outputs=[], dim_ranges={"cameras": (1, 8)})
    assert spec.name == "images"
    got = evaluate_backends({config: backend}, data, m, batch=3)[config].scores
    assert got.top1 == 1.0 and got.map is None


def test_data_that_does_not_fit_the_model_is_a_data_error(manifest, tmp_path):
    data = synthetic_dataset(image_size=(64, 96), frames=1)
    with pytest.raises(DataError, match="classification"):
        check_compatible(dataclasses.replace(manifest, head=HeadSpec("cls")), data)
    with pytest.raises(DataError, match="not the model's"):
        check_compatible(dataclasses.replace(manifest, class_names=["car", "bus"]), data)
    with pytest.raises(DataError, match="cannot score sam heads"):
        check_compatible(dataclasses.replace(manifest, head=HeadSpec("sam")), data)
