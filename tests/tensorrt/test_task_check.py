"""The golden check's task level: the bundle's head judges an engine's outputs (issue 22 point 3).

The "engines" here are ONNX Runtime runs of a bundle's ONNX (``check_engine`` takes any callable),
some with their outputs changed the way a broken engine would change them. demo-detr (the trained
two-stage detector) picks its 30 queries by a top-k, so a lower precision may return them in
another order; its detections, not its rows, must agree with FP32.
"""

import copy
import dataclasses
import shutil

import numpy as np
import pytest

from vitdeploy.bundle import Bundle, Precision, Variant
from vitdeploy.bundle.head import HeadSpec
from vitdeploy.heads import head_for
from vitdeploy.runtime.backends.onnxruntime import cpu_session, run_on_cpu
from vitdeploy.tensorrt.agreement import check_engine, task_check_for
from vitdeploy.tensorrt.golden import ensure_golden

BUNDLE_CAMERAS = 3  # the shared ``bundle`` fixture (random-weight vit-test-detr): cameras 1..3
CASES = [1, 2]


@pytest.fixture(scope="module")
def demo(exported, tmp_path_factory):
    """demo-detr at 2 cameras (shipped weights), a copy of its own with the golden pool made:
    (bundle, graph, golden)."""
    path = tmp_path_factory.mktemp("demo_detr_golden") / "bundle"
    shutil.copytree(exported("demo-detr", max_cameras=2).path, path)
    bundle = Bundle.open(path)
    graph = bundle.manifest.graph()
    return bundle, graph, ensure_golden(bundle, graph, dims={"cameras": (1, 2, 2)})


def _engine(bundle, precision="fp32", change=lambda out: out):
    """An "engine": ONNX Runtime on the bundle's ``precision`` ONNX, its outputs passed through ``change``."""
    session = cpu_session(bundle.onnx_path(precision))
    return lambda feeds: change(run_on_cpu(session, feeds))


def _replay(golden, change=lambda out: out):
    """An FP32 "engine" without the cost of running one: each frame of the golden pool answered with
    the outputs ONNX Runtime gave for it (the reference), passed through ``change``."""
    pool = golden.inputs["images"].reshape(golden.frames, -1)

    def run(feeds):
        frames = feeds["images"].reshape(len(feeds["images"]), -1)
        index = [int(np.flatnonzero((pool == frame).all(axis=1))[0]) for frame in frames]
        return change({name: value[index] for name, value in golden.outputs.items()})

    return run


def _reordered(out):
    """The queries in reverse order: the same detections, other rows (as a lower precision's top-k may)."""
    return {name: np.ascontiguousarray(value[:, ::-1]) for name, value in out.items()}


def _check(demo, engine, precision):
    bundle, graph, golden = demo
    return check_engine(engine, golden, graph, precision=precision, camera_counts=CASES,
                        task_check=task_check_for(bundle.manifest, graph))


def test_the_golden_pool_gives_a_driving_detector_something_to_agree_on(demo):
    bundle, _graph, golden = demo
    agreement = head_for(bundle.manifest).agreement(golden.outputs, golden.outputs)
    assert agreement.value == 1.0 and agreement.details["images"] == 12
    assert agreement.details["ground_truth_boxes"] >= 60  # measured: 95 confident FP32 detections
    drive = {name: value[:1] for name, value in golden.outputs.items()}  # the first frame: a driving scene
    assert head_for(bundle.manifest).agreement(drive, drive).details["ground_truth_boxes"] >= 3


def test_reordered_queries_pass_on_the_task_check_with_their_element_bounds_advisory(demo):
    report = _check(demo, _replay(demo[2], _reordered), Precision.INT8)
    assert report.passed, report.summary()
    for case in report.cases.values():
        assert all(not a.failures and a.advisory for a in case.values())  # rows differ; detections do not
    assert all(v.value == pytest.approx(1.0) for v in report.task.values())
    assert "detection_map 1.000 (min 0.75)" in report.summary()  # 0.75: no INT8 agreement recorded
    assert "element bounds of boxes, logits advisory" in report.summary()
    record = report.to_record()
    assert record["passed"] and record["task"]["cameras=2"]["metric"] == "detection_map"
    assert record["cases"]["cameras=1"]["boxes"]["advisory"]  # what the element bounds said: kept, not counted


@pytest.mark.parametrize("broken", ["boxes x1.2", "boxes + noise of sigma 0.1"])
def test_broken_boxes_fail_the_task_check(demo, broken):
    rng = np.random.default_rng(0)

    def change(out):
        out = _reordered(out)
        boxes = out["boxes"] * 1.2 if broken == "boxes x1.2" else out["boxes"] + rng.normal(0, 0.1, out["boxes"].shape)
        return {**out, "boxes": boxes.astype(np.float32)}

    report = _check(demo, _replay(demo[2], change), Precision.INT8)
    assert not report.passed
    assert all(v.defined and v.value < 0.1 for v in report.task.values())  # measured: 0.01-0.02
    assert "cameras=1 task: detection_map 0.0" in report.summary()
    # the task check failed, so the set outputs' element bounds count too
    assert report.cases["cameras=2"]["boxes"].failures and not report.cases["cameras=2"]["boxes"].advisory


def test_an_fp32_engine_with_the_classes_in_another_order_fails(demo):
    def swap_car_and_truck(out):
        return {**out, "logits": out["logits"][..., [1, 0, 2, 3, 4, 5, 6]]}

    report = _check(demo, _replay(demo[2], swap_car_and_truck), Precision.FP32)
    assert not report.passed
    assert all(0.3 < v.value < 0.99 for v in report.task.values())  # measured: 0.667
    assert "task: detection_map 0.667 < 0.99 (fp32: the reference's own graph)" in report.summary()
    bundle, graph, golden = demo
    fp32 = check_engine(_engine(bundle), golden, graph, precision=Precision.FP32, camera_counts=[1],
                        task_check=task_check_for(bundle.manifest, graph))
    assert fp32.passed, fp32.summary()  # ONNX Runtime itself one frame at a time (the reference: two at a time)


def test_the_minimum_comes_from_the_agreement_calibration_recorded(demo):
    bundle, graph, _golden = demo
    manifest = copy.deepcopy(bundle.manifest)
    measured = manifest.graph()
    agreement = {"metric": "detection_map", "value": 0.94, "min": 0.9}
    measured.set_variant(Variant(precision=Precision.INT8, file="model.int8.onnx", sha256="0" * 64,
                                 details={"agreement": agreement}))
    measured.set_variant(Variant(precision=Precision.FP16, file="model.fp16.onnx", sha256="0" * 64,
                                 details={"agreement": {**agreement, "metric": "top1", "value": 1.0}}))
    check = task_check_for(manifest, measured)
    assert check.measured == {Precision.INT8: 0.94}  # another metric is not this head's agreement
    assert check.minimum(Precision.INT8) == (pytest.approx(0.79), "calibration measured 0.940, minus 0.15")
    assert check.minimum(Precision.FP16)[0] == 0.95
    assert check.unordered == {"logits", "boxes"}


def test_heads_without_a_task_check_or_without_set_outputs(exported, bundle_copy):
    cls = bundle_copy(exported("vit-test-cls", max_cameras=6))
    graph = cls.manifest.graph()
    check = task_check_for(cls.manifest, graph)
    assert check is not None and check.unordered == frozenset()
    golden = ensure_golden(cls, graph, dims={"cameras": (1, 6, 6)})

    def shifted(out):  # every logit up by 5 % of the scale: the same top class, other numbers
        return {"logits": out["logits"] + 0.05 * np.abs(out["logits"]).max()}

    report = check_engine(_engine(cls, change=shifted), golden, graph, precision=Precision.FP32,
                          camera_counts=[1, 6], task_check=check)
    assert all(v.value == 1.0 for v in report.task.values())  # top-1 agrees everywhere
    assert not report.passed and report.cases["cameras=1"]["logits"].failures  # the element bounds still judge
    # SAM has no task-level agreement; a graph without the head's outputs cannot be judged by it
    sam = dataclasses.replace(cls.manifest, head=HeadSpec("sam"))
    assert task_check_for(sam, graph) is None


def test_an_undefined_agreement_is_reported_and_the_element_bounds_decide(bundle):
    graph = bundle.manifest.graph()
    golden = ensure_golden(bundle, graph, dims={"cameras": (1, 3, 3)})
    check = task_check_for(bundle.manifest, graph)

    def judged(engine):
        return check_engine(engine, golden, graph, precision=Precision.INT8, camera_counts=[1, 3], task_check=check)

    same = judged(_engine(bundle))
    assert same.passed and all(not v.defined for v in same.task.values())  # random weights detect nothing
    assert "detection_map undefined: FP32 detects nothing with score >= 0.5" in same.summary()
    assert same.to_record()["task"]["cameras=1"]["reason"].startswith("FP32 detects nothing")
    reordered = judged(_engine(bundle, change=_reordered))
    assert not reordered.passed and "undefined" in reordered.summary()
    assert reordered.cases["cameras=1"]["boxes"].failures  # not relaxed: nothing judged them as a set


@pytest.mark.slow
def test_demo_detr_fp16_and_int8_onnx_pass_as_engines(demo, tmp_path):
    """The real thing on the CPU: demo-detr calibrated to FP16 and INT8 (ONNX Runtime as the
    engine), checked against its recorded agreement; INT8 with broken boxes fails."""
    from vitdeploy.calibration import CalibrationOptions, calibrate_bundle

    path = tmp_path / "b"
    shutil.copytree(demo[0].path, path)
    for precision in ("fp16", "int8"):
        calibrate_bundle(path, precision=precision, options=CalibrationOptions(samples=16, heldout=16))
    bundle = Bundle.open(path)
    graph = bundle.manifest.graph()
    golden = ensure_golden(bundle, graph, dims={"cameras": (1, 2, 2)})
    check = task_check_for(bundle.manifest, graph)
    assert set(check.measured) == {Precision.FP16, Precision.INT8}
    for precision in (Precision.FP16, Precision.INT8):
        report = check_engine(_engine(bundle, precision.value), golden, graph, precision=precision,
                              camera_counts=CASES, task_check=check)
        assert report.passed, report.summary()
        assert all(v.value >= v.minimum for v in report.task.values())
    int8 = _engine(bundle, "int8", change=lambda out: {**out, "boxes": out["boxes"] * 1.2})
    assert not check_engine(int8, golden, graph, precision=Precision.INT8, camera_counts=CASES,
                            task_check=check).passed
