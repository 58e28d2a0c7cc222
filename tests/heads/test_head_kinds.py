"""The head type: one class per kind, declaring its outputs, decoding, agreement and eval metric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitdeploy.bundle import CAMERA_AXIS, BoxFormat, BoxLayout, HeadSpec, ScoreActivation
from vitdeploy.errors import BundleError, DataError
from vitdeploy.heads import HEADS, Head, SetResult, make_head
from vitdeploy.models.zoo import ZOO, build_model


def head_of(card_name: str, **changes) -> Head:
    card = ZOO[card_name]
    spec = HeadSpec(**{**card.head.__dict__, **changes})
    return make_head(spec, class_names=card.class_names, image_size=card.image_size)


@pytest.mark.parametrize("name", ["vit-test-cls", "vit-test-cait", "vit-test-detr", "vit-test-mask", "vit-test-tab",
                                  "demo-detr"])
def test_each_zoo_model_gives_the_outputs_its_head_declares(name):
    head = head_of(name)
    h, w = ZOO[name].image_size
    with torch.no_grad():
        out = build_model(name)(torch.zeros(2, 3, h, w))
    shapes = {k: [CAMERA_AXIS, *v.shape[1:]] for k, v in out.items()}
    head.check_outputs(shapes)  # names and every fixed axis agree
    assert [s.name for s in head.outputs()] == list(out)
    assert all(s.meaning and s.shape[0] == CAMERA_AXIS for s in head.outputs())


def test_outputs_that_do_not_fit_the_declared_head_are_named():
    head = head_of("vit-test-detr", scores=ScoreActivation.SIGMOID)  # sigmoid: 6 classes, no "no object"
    with pytest.raises(BundleError, match=r"do not fit a detr \(sigmoid scores.*expected logits \[cameras, 10, 6\]"
                                          r".*got logits \[cameras, 10, 7\]"):
        head.check_outputs({"logits": [CAMERA_AXIS, 10, 7], "boxes": [CAMERA_AXIS, 10, 4]})
    with pytest.raises(BundleError, match="got logits"):
        head.check_outputs({"logits": [CAMERA_AXIS, 10, 6]})  # boxes missing


def test_output_meanings_follow_the_spec():
    assert head_of("vit-test-detr").meaning("boxes") == "cx, cy, w, h per query in 0..1 of the model input"
    xyxy = head_of("vit-test-detr", boxes=BoxFormat(BoxLayout.XYXY, units="pixels"))
    assert xyxy.meaning("boxes") == "x1, y1, x2, y2 per query in model-input pixels"
    assert head_of("vit-test-tab").meaning("logits_task1") == "class logits of task 'task1'"
    sam = head_of("sam-vit-test")
    assert sam.output("low_res_masks").shape == [CAMERA_AXIS, 4, 64, 64]


def test_a_kind_refuses_settings_it_does_not_have():
    with pytest.raises(BundleError, match="cls heads have no box output"):
        head_of("vit-test-cls", boxes=BoxFormat())
    with pytest.raises(BundleError, match="unknown head kind 'yolo'; vitdeploy knows detr, mask"):
        make_head(HeadSpec("yolo"), image_size=(64, 64))


def _confident_detr(queries: int = 5, classes: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = np.full((3, queries, classes + 1), -8.0, np.float32)
    for cam in range(3):
        for q in range(queries):
            logits[cam, q, rng.integers(0, classes)] = 8.0
    boxes = np.concatenate([rng.uniform(0.2, 0.8, (3, queries, 2)), rng.uniform(0.05, 0.2, (3, queries, 2))], -1)
    return {"logits": logits, "boxes": boxes.astype(np.float32)}


def test_agreement_takes_two_output_dicts():
    detr = head_of("vit-test-detr")
    ref = _confident_detr()
    same = detr.agreement(ref, ref)
    assert same.metric == "detection_map" and same.value == pytest.approx(1.0)
    moved = {**ref, "boxes": ref["boxes"] + np.float32(0.3)}  # every box shifted well past IoU 0.5
    assert detr.agreement(ref, moved).value < 0.1
    cls = head_of("vit-test-cls")
    logits = np.eye(4, 10, dtype=np.float32)
    assert cls.agreement({"logits": logits}, {"logits": logits[:, ::-1].copy()}).value == 0.0
    tab = head_of("vit-test-tab")  # tasks of 4, 3 and 5 classes: per-task top-1, averaged
    ref = np.zeros((2, 12), np.float32)
    ref[:, [0, 4, 7]] = 1.0
    cand = ref.copy()
    cand[:, [0, 4]], cand[:, [1, 5]] = 0.0, 1.0  # tasks 0 and 1 change their answer, task 2 keeps it
    task = tab.agreement({"logits": ref}, {"logits": cand})
    assert task.value == pytest.approx(1 / 3) and task.details["tasks"] == {"task0": 0.0, "task1": 0.0, "task2": 1.0}


def test_query_outputs_are_sets_and_a_head_knows_which_graphs_it_can_judge():
    detr, cls = head_of("vit-test-detr"), head_of("vit-test-cls")
    ref = _confident_detr()
    reversed_queries = {name: value[:, ::-1].copy() for name, value in ref.items()}
    assert detr.unordered_outputs == ("logits", "boxes")  # the same detections in any row order:
    assert detr.agreement(ref, reversed_queries).value == pytest.approx(1.0)
    assert head_of("vit-test-mask").unordered_outputs == ("logits", "masks") and cls.unordered_outputs == ()
    assert detr.compares(["logits", "boxes"]) and not detr.compares(["logits"])  # boxes missing
    assert cls.compares(["logits"]) and not head_of("sam-vit-test").compares(["iou_predictions", "low_res_masks"])


def test_sam_declares_its_outputs_but_runs_nowhere_yet():
    sam = head_of("sam-vit-test")
    assert not sam.runnable and sam.eval_task is None and sam.agreement_metric is None and sam.prompted
    assert sam.agreement({}, {}) is None
    with pytest.raises(BundleError, match="cannot decode sam heads .*not supported yet"):
        sam.decode({})
    with pytest.raises(DataError, match="cannot score sam heads .*not supported yet"):
        sam.truth_scorer(class_map=np.arange(1))


def test_every_kind_is_one_class_in_the_registry():
    assert list(HEADS) == ["detr", "mask", "cls", "cait", "tab", "sam", "rig3d"]
    assert all(cls.kind == kind for kind, cls in HEADS.items())
    assert {card.head.kind for card in ZOO.values()} == set(HEADS)


# ---- a rig-level head: one answer per frame set ------------------------------------------------------

class _Centre(SetResult):
    def __init__(self, xyz):
        self.xyz = xyz

    def to_records(self, class_names):
        return [{"label": class_names[0], "centre_m": [round(float(v), 2) for v in self.xyz]}]


class _RigHead(Head):
    """A stand-in for a rig-level head (e.g. Perceiver-IO queries over all cameras)."""

    kind = "rig-test"
    per_camera = False

    def outputs(self):
        from vitdeploy.bundle import TensorSpec

        return [TensorSpec("centre", "float32", [1, 3], "one object's centre in the ego frame, metres")]

    def decode(self, outputs, *, letterboxes=None, score_threshold=0.3, top_k=100):
        return _Centre(outputs["centre"][0])


def test_a_rig_level_head_answers_once_per_frame_set():
    from vitdeploy.runtime.sinks import camera_results, set_record
    from vitdeploy.runtime.sources import Health
    from vitdeploy.runtime.sync import CameraSlot, FrameSet

    head = _RigHead(HeadSpec("rig-test"), class_names=["car"], image_size=(64, 96))
    slots = [CameraSlot(name, np.zeros((64, 96, 3), np.uint8), False, Health.OK, 1.0, 0) for name in ("a", "b")]
    fs = FrameSet(index=0, slots=slots, skew_ms=0.0, stamps={"sync": 1.0},
                  results=head.decode({"centre": np.array([[1.0, 2.0, 0.5]])}))
    record = set_record(fs, class_names=["car"], budget_ms=100.0)
    assert record["results"] == [{"label": "car", "centre_m": [1.0, 2.0, 0.5]}]
    assert [c["results"] for c in record["cameras"]] == [[], []] and camera_results(fs) == [None, None]
