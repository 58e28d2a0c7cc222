"""The per-precision agreement an engine must reach with the FP32 reference (agreement.py).

Cosine alone passed broken INT8 engines (issue 22): boxes scaled by 1.2 keep a cosine near 1 and
noise of sigma 0.1 on 0..1 boxes about 0.97-0.99. The element bounds catch both; a faithful INT8
output (the measured INT8 graph of the trained test detector moved no element by more than 0.8 %
of the output's scale) passes.
"""

import numpy as np
import pytest

from vitdeploy.bundle import Precision
from vitdeploy.bundle.manifest import Graph, TensorSpec
from vitdeploy.heads import TaskAgreement
from vitdeploy.tensorrt.agreement import TOLERANCES, GoldenReport, TaskCheck, check_engine, compare_output
from vitdeploy.tensorrt.golden import GoldenSet

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((4, 10, 7)).astype(np.float32) * 5
#: DETR boxes: (cx, cy, w, h) in 0..1, 2 cameras x 30 queries
BOXES = np.concatenate([RNG.uniform(0.1, 0.9, (2, 30, 2)), RNG.uniform(0.02, 0.5, (2, 30, 2))], -1).astype(np.float32)
INT8 = TOLERANCES[Precision.INT8]


def _noisy(ref, relative, seed=1):
    rng = np.random.default_rng(seed)
    return (ref + rng.standard_normal(ref.shape) * relative * np.abs(ref).max()).astype(np.float32)


def _on_8bit_grid(ref):
    """``ref`` rounded to 127 steps of its own scale: a faithful INT8 output's error."""
    step = np.abs(ref).max() / 127
    return (np.round(ref / step) * step).astype(np.float32)


@pytest.mark.parametrize("precision", list(Precision))
def test_identical_outputs_pass_every_precision(precision):
    a = compare_output("logits", LOGITS, LOGITS.copy(), TOLERANCES[precision])
    assert a.passed and a.max_abs == 0 and a.cosine == pytest.approx(1.0) and a.argmax == 1.0 and a.within == 1.0


def test_tolerances_tighten_with_precision():
    fp16_like = _noisy(LOGITS, 5e-3)  # ~1.5e-2 max normalised error: an FP16 engine, not an FP32 one
    assert not compare_output("boxes", LOGITS, fp16_like, TOLERANCES[Precision.FP32]).passed
    assert compare_output("boxes", LOGITS, fp16_like, TOLERANCES[Precision.FP16]).passed
    int8_like = _noisy(LOGITS, 1.5e-2)  # beyond FP16 (worst element ~4 % of the scale), fine for INT8
    fp16 = compare_output("boxes", LOGITS, int8_like, TOLERANCES[Precision.FP16])
    assert not fp16.passed and any("norm error" in f for f in fp16.failures)
    assert compare_output("boxes", LOGITS, int8_like, INT8).passed


def test_int8_boxes_scaled_by_1_2_fail_although_cosine_stays_near_1():
    a = compare_output("boxes", BOXES, BOXES * 1.2, INT8)
    assert a.cosine > 0.999  # what the cosine-only check accepted
    assert not a.passed and a.within < 0.5
    assert any("of elements within" in f for f in a.failures)


def test_int8_boxes_with_noise_of_sigma_0_1_fail():
    noisy = (BOXES + np.random.default_rng(2).normal(0, 0.1, BOXES.shape)).astype(np.float32)
    a = compare_output("boxes", BOXES, noisy, INT8)
    assert not a.passed and a.within < 0.8
    assert any("norm error" in f for f in a.failures)


def test_a_faithful_int8_output_passes():
    for name, ref in (("boxes", BOXES), ("logits", LOGITS)):
        a = compare_output(name, ref, _on_8bit_grid(ref), INT8)
        assert a.passed, a.failures
        assert a.norm_error <= 0.5 / 127 + 1e-6 and a.within == 1.0


def test_int8_is_judged_on_direction_and_top_class():
    flipped = -LOGITS  # same magnitude, every row's top class changes
    a = compare_output("logits", LOGITS, flipped, INT8)
    assert not a.passed
    assert a.argmax < 0.2 and a.cosine < 0
    assert any("top-class agreement" in f for f in a.failures) and any("cosine" in f for f in a.failures)


def test_top_class_agreement_is_checked_for_logits_only():
    ref = np.zeros((2, 5, 3), np.float32)
    ref[..., 0] = 1.0
    got = ref.copy()
    got[0, :3, 0], got[0, :3, 1] = 0.49, 0.51  # 3 of 10 rows now pick class 1, a tiny change in value
    assert compare_output("logits", ref, got, INT8).argmax == pytest.approx(0.7)
    assert compare_output("boxes", ref, got, INT8).argmax is None


def test_mask_iou_for_mask_outputs():
    ref = np.full((1, 4, 8, 8), -1.0, np.float32)
    ref[..., :4, :] = 1.0  # top half inside
    got = ref.copy()
    got[..., :4, :4] = -1.0  # half of the mask lost
    a = compare_output("low_res_masks", ref, got, INT8)
    assert a.mask_iou == pytest.approx(0.5)
    assert any("mask IoU" in f for f in a.failures)


def test_shape_and_non_finite_outputs_fail():
    assert "shape" in compare_output("boxes", LOGITS, LOGITS[:1], INT8).failures[0]
    bad = LOGITS.copy()
    bad[0, 0, 0] = np.nan
    assert "NaN" in compare_output("boxes", LOGITS, bad, INT8).failures[0]


def test_report_summary_and_record():
    good = compare_output("logits", LOGITS, LOGITS, TOLERANCES[Precision.FP16])
    bad = compare_output("logits", LOGITS, -LOGITS, TOLERANCES[Precision.FP16])
    report = GoldenReport(Precision.FP16, {"cameras=1": {"logits": good}, "cameras=4": {"logits": bad}})
    assert not report.passed
    assert report.summary().startswith("FAIL (cameras=4 logits: ")
    record = report.to_record()
    assert record["passed"] is False and record["tolerance"]["min_cosine"] == 0.999
    assert record["tolerance"]["min_within"] == 0.95 and record["cases"]["cameras=4"]["logits"]["failures"]
    assert GoldenReport(Precision.FP16, {"cameras=1": {"logits": good}}).summary().startswith("pass (min cosine 1.0")


#: Two frames, each image filled with its own index, so a stand-in engine can look up its outputs.
FRAMES = np.arange(2, dtype=np.float32)[:, None, None, None] * np.ones((1, 3, 4, 4), np.float32)


def _frame(feeds):
    return feeds["images"][:, 0, 0, 0].astype(int)


class _Head:
    """A head whose agreement is ``value`` whatever it is given, and whose ``boxes`` are a set."""

    unordered_outputs = ("boxes",)

    def __init__(self, value):
        self.value, self.seen = value, []

    def agreement(self, reference, candidate):
        self.seen.append((sorted(reference), sorted(candidate), len(candidate["boxes"])))
        return TaskAgreement("detection_map", "stand-in", self.value,
                             reason="" if self.value is not None else "FP32 detects nothing")


def test_a_task_level_check_takes_part_in_the_verdict():
    graph = Graph(name="model", inputs=[TensorSpec("images", "float32", ["cameras", 3, 4, 4])],
                  outputs=[TensorSpec("boxes", "float32", ["cameras", 30, 4])])
    golden = GoldenSet(graph="model", onnx_sha256="a" * 64, dims={"cameras": 2},
                       inputs={"images": FRAMES}, outputs={"boxes": BOXES})
    head = _Head(0.41)
    check = TaskCheck(head=head, measured={Precision.INT8: 0.9})
    report = check_engine(lambda feeds: {"boxes": BOXES[_frame(feeds)]}, golden, graph,
                          precision=Precision.INT8, camera_counts=[1, 2], task_check=check)
    assert head.seen == [(["boxes"], ["boxes"], 2)] * 2  # the whole pool for each camera count
    assert all(a.passed for case in report.cases.values() for a in case.values())  # element-wise: identical
    why = "detection_map 0.410 < 0.75 (calibration measured 0.900, minus 0.15)"
    assert not report.passed and f"cameras=2 task: {why}" in report.summary()
    record = report.to_record()["task"]["cameras=1"]
    assert record["failures"] == [why] and record["value"] == 0.41 and record["minimum"] == pytest.approx(0.75)
    agreeing = check_engine(lambda feeds: {"boxes": BOXES[_frame(feeds)]}, golden, graph,
                            precision=Precision.INT8, camera_counts=[2], task_check=TaskCheck(head=_Head(0.8)))
    assert agreeing.passed and "detection_map 0.800 (min 0.75)" in agreeing.summary()  # 0.75: nothing measured


def test_set_outputs_are_judged_by_the_task_check_only_when_it_is_defined_and_passes():
    graph = Graph(name="model", inputs=[TensorSpec("images", "float32", ["cameras", 3, 4, 4])],
                  outputs=[TensorSpec("boxes", "float32", ["cameras", 30, 4]),
                           TensorSpec("logits", "float32", ["cameras", 30, 7])])
    logits = np.random.default_rng(3).standard_normal((2, 30, 7)).astype(np.float32) * 5
    golden = GoldenSet(graph="model", onnx_sha256="a" * 64, dims={"cameras": 2},
                       inputs={"images": FRAMES}, outputs={"boxes": BOXES, "logits": logits})

    def judged(value, logits_shift=0.0):
        def reordered(feeds):  # the boxes in reverse query order
            return {"boxes": BOXES[_frame(feeds), ::-1], "logits": logits[_frame(feeds)] + logits_shift}

        return check_engine(reordered, golden, graph, precision=Precision.INT8, camera_counts=[2],
                            task_check=TaskCheck(head=_Head(value)))

    passed = judged(0.95)
    boxes = passed.cases["cameras=2"]["boxes"]
    assert passed.passed and not boxes.failures and any("of elements within" in f for f in boxes.advisory)
    assert "element bounds of boxes advisory" in passed.summary()
    assert passed.to_record()["cases"]["cameras=2"]["boxes"]["advisory"] == list(boxes.advisory)
    # an output the head does not call a set keeps its element bounds
    shifted = judged(0.95, logits_shift=3.0)
    assert not shifted.passed and shifted.cases["cameras=2"]["logits"].failures
    assert not shifted.cases["cameras=2"]["logits"].advisory
    assert not judged(0.5).cases["cameras=2"]["boxes"].passed  # the task check failed: element bounds count
    undefined = judged(None)
    assert not undefined.passed and not undefined.cases["cameras=2"]["boxes"].passed  # undefined decides nothing
    assert "detection_map undefined: FP32 detects nothing" in undefined.summary()
    assert undefined.to_record()["task"]["cameras=2"]["value"] is None


def test_task_minimums_follow_what_calibration_measured():
    check = TaskCheck(head=_Head(1.0), measured={Precision.FP16: 0.998, Precision.INT8: 0.94})
    assert check.minimum(Precision.FP32)[0] == 0.99
    assert check.minimum(Precision.FP16) == (pytest.approx(0.948), "calibration measured 0.998, minus 0.05")
    assert check.minimum(Precision.INT8)[0] == pytest.approx(0.79)
    poorly = TaskCheck(head=_Head(1.0), measured={Precision.FP16: 0.7, Precision.INT8: 0.55})
    assert poorly.minimum(Precision.FP16) == (0.80, "fp16 floor (calibration measured 0.700)")
    assert poorly.minimum(Precision.INT8)[0] == 0.50
    unmeasured = TaskCheck(head=_Head(1.0))
    assert [unmeasured.minimum(p)[0] for p in (Precision.FP16, Precision.INT8)] == [0.95, 0.75]
    assert "no agreement recorded" in unmeasured.minimum(Precision.INT8)[1]


@pytest.mark.slow
def test_a_calibrated_int8_graph_passes_the_int8_bounds(exported, tmp_path):
    """The real thing on the CPU: vit-test-detr's INT8 Q/DQ graph (ONNX Runtime) against its FP32
    graph on the golden photographs, as a faithful INT8 engine would be judged."""
    import shutil

    from vitdeploy.bundle import Bundle
    from vitdeploy.calibration import CalibrationOptions, calibrate_bundle
    from vitdeploy.runtime.backends.onnxruntime import run_on_cpu
    from vitdeploy.tensorrt.golden import ensure_golden

    path = tmp_path / "b"
    shutil.copytree(exported("vit-test-detr", max_cameras=2).path, path)
    calibrate_bundle(path, precision="int8", options=CalibrationOptions(samples=16, heldout=4))
    bundle = Bundle.open(path)
    graph = bundle.manifest.graph()
    golden = ensure_golden(bundle, graph, dims={"cameras": (1, 2, 2)})
    report = check_engine(lambda feeds: run_on_cpu(bundle.onnx_path("int8"), feeds), golden, graph,
                          precision=Precision.INT8, camera_counts=[1, 2])
    assert report.passed, report.summary()
