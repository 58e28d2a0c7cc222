"""Golden inputs/outputs in the bundle and the per-precision agreement an engine must reach."""

import shutil

import numpy as np
import pytest

from vitdeploy.bundle import Bundle, Precision
from vitdeploy.runtime.backends.onnxruntime import run_on_cpu
from vitdeploy.tensorrt.errors import BuildError
from vitdeploy.tensorrt.golden import (
    GOLDEN_FILE,
    TOLERANCES,
    GoldenReport,
    check_engine,
    compare_output,
    ensure_golden,
    load_golden,
)

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((4, 10, 7)).astype(np.float32) * 5


def _noisy(ref, relative, seed=1):
    rng = np.random.default_rng(seed)
    return (ref + rng.standard_normal(ref.shape) * relative * np.abs(ref).max()).astype(np.float32)


# ---- comparison ---------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", list(Precision))
def test_identical_outputs_pass_every_precision(precision):
    a = compare_output("logits", LOGITS, LOGITS.copy(), TOLERANCES[precision])
    assert a.passed and a.max_abs == 0 and a.cosine == pytest.approx(1.0) and a.argmax == 1.0


def test_tolerances_tighten_with_precision():
    fp16_like = _noisy(LOGITS, 5e-3)  # ~1.5e-2 max normalised error: an FP16 engine, not an FP32 one
    assert not compare_output("boxes", LOGITS, fp16_like, TOLERANCES[Precision.FP32]).passed
    assert compare_output("boxes", LOGITS, fp16_like, TOLERANCES[Precision.FP16]).passed
    int8_like = _noisy(LOGITS, 4e-2)  # far beyond FP16, still pointing the same way
    fp16 = compare_output("boxes", LOGITS, int8_like, TOLERANCES[Precision.FP16])
    assert not fp16.passed and any("norm error" in f for f in fp16.failures)
    assert compare_output("boxes", LOGITS, int8_like, TOLERANCES[Precision.INT8]).passed
    assert TOLERANCES[Precision.INT8].max_norm_error is None


def test_int8_is_judged_on_direction_and_top_class():
    flipped = -LOGITS  # same magnitude, every row's top class changes
    a = compare_output("logits", LOGITS, flipped, TOLERANCES[Precision.INT8])
    assert not a.passed
    assert a.argmax < 0.2 and a.cosine < 0
    assert any("top-class agreement" in f for f in a.failures) and any("cosine" in f for f in a.failures)


def test_top_class_agreement_is_checked_for_logits_only():
    ref = np.zeros((2, 5, 3), np.float32)
    ref[..., 0] = 1.0
    got = ref.copy()
    got[0, :3, 0], got[0, :3, 1] = 0.49, 0.51  # 3 of 10 rows now pick class 1, a tiny change in value
    assert compare_output("logits", ref, got, TOLERANCES[Precision.INT8]).argmax == pytest.approx(0.7)
    assert compare_output("boxes", ref, got, TOLERANCES[Precision.INT8]).argmax is None


def test_mask_iou_for_mask_outputs():
    ref = np.full((1, 4, 8, 8), -1.0, np.float32)
    ref[..., :4, :] = 1.0  # top half inside
    got = ref.copy()
    got[..., :4, :4] = -1.0  # half of the mask lost
    a = compare_output("low_res_masks", ref, got, TOLERANCES[Precision.INT8])
    assert a.mask_iou == pytest.approx(0.5)
    assert any("mask IoU" in f for f in a.failures)


def test_shape_and_non_finite_outputs_fail():
    assert "shape" in compare_output("boxes", LOGITS, LOGITS[:1], TOLERANCES[Precision.INT8]).failures[0]
    bad = LOGITS.copy()
    bad[0, 0, 0] = np.nan
    assert "NaN" in compare_output("boxes", LOGITS, bad, TOLERANCES[Precision.INT8]).failures[0]


def test_report_summary_and_record():
    good = compare_output("logits", LOGITS, LOGITS, TOLERANCES[Precision.FP16])
    bad = compare_output("logits", LOGITS, -LOGITS, TOLERANCES[Precision.FP16])
    report = GoldenReport(Precision.FP16, {"cameras=1": {"logits": good}, "cameras=4": {"logits": bad}})
    assert not report.passed
    assert report.summary().startswith("FAIL (cameras=4 logits: ")
    record = report.to_record()
    assert record["passed"] is False and record["tolerance"]["min_cosine"] == 0.999
    assert record["cases"]["cameras=4"]["logits"]["failures"]
    assert GoldenReport(Precision.FP16, {"cameras=1": {"logits": good}}).summary().startswith("pass (min cosine 1.0")


# ---- golden.npz in a real bundle ----------------------------------------------------------------
@pytest.fixture
def bundle(exported, tmp_path):
    src = exported("vit-test-detr", max_cameras=3)
    shutil.copytree(src.path, tmp_path / "b")
    return Bundle.open(tmp_path / "b")


def test_golden_is_made_once_from_fp32_onnxruntime_and_reused(bundle):
    graph = bundle.manifest.graph()
    made = ensure_golden(bundle, graph, dims={"cameras": (1, 3, 3)})
    path = bundle.file(GOLDEN_FILE)
    assert path.is_file() and made.cameras == 3
    images = made.inputs["images"]
    assert images.shape == (3, 3, 64, 96) and images.dtype == np.float32
    assert not np.allclose(images[0], images[1])  # different views per camera
    assert -3 < images.mean() < 3  # normalised photographs, not raw pixels
    ref = run_on_cpu(bundle.onnx_path(), made.inputs)
    np.testing.assert_array_equal(made.outputs["logits"], ref["logits"])

    stamp = path.stat().st_mtime_ns
    again = ensure_golden(bundle, graph, dims={"cameras": (1, 2, 2)})
    assert path.stat().st_mtime_ns == stamp  # reused, not remade
    np.testing.assert_array_equal(again.inputs["images"], images)
    assert load_golden(path)["model"].onnx_sha256 == graph.variant("fp32").sha256


def test_golden_is_remade_when_the_fp32_onnx_changes(bundle):
    graph = bundle.manifest.graph()
    ensure_golden(bundle, graph, dims={"cameras": (1, 3, 3)})
    graph.variant("fp32").sha256 = "0" * 64  # as after a re-export
    remade = ensure_golden(bundle, graph, dims={"cameras": (1, 3, 3)})
    assert remade.onnx_sha256 == "0" * 64
    assert load_golden(bundle.file(GOLDEN_FILE))["model"].onnx_sha256 == "0" * 64


def test_check_engine_cuts_the_golden_cameras_and_judges_each_count(bundle):
    graph = bundle.manifest.graph()
    golden = ensure_golden(bundle, graph, dims={"cameras": (1, 3, 3)})
    onnx = bundle.onnx_path()
    seen = []

    def engine(feeds):
        seen.append(feeds["images"].shape[0])
        return run_on_cpu(onnx, feeds)

    report = check_engine(engine, golden, graph, precision=Precision.FP32, camera_counts=[1, 3])
    assert seen == [1, 3] and report.passed
    assert set(report.cases) == {"cameras=1", "cameras=3"}

    def broken(feeds):
        out = run_on_cpu(onnx, feeds)
        out["boxes"] = out["boxes"] + 0.05
        return out

    bad = check_engine(broken, golden, graph, precision=Precision.FP16, camera_counts=[1, 3])
    assert not bad.passed and "boxes" in bad.summary()
    with pytest.raises(BuildError, match="holds 3 cameras"):
        golden.take(graph, 4)


def test_an_unreadable_golden_file_is_a_clear_error(bundle):
    bundle.file(GOLDEN_FILE).write_bytes(b"not an npz")
    with pytest.raises(BuildError, match="delete it and build again"):
        ensure_golden(bundle, bundle.manifest.graph(), dims={"cameras": (1, 3, 3)})
