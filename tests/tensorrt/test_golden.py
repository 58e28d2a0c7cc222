"""Golden inputs and FP32 reference outputs in the bundle (what engines are judged on)."""


import numpy as np
import pytest

from vitdeploy.bundle import Precision
from vitdeploy.runtime.backends.onnxruntime import run_on_cpu
from vitdeploy.tensorrt.agreement import check_engine
from vitdeploy.tensorrt.errors import BuildError
from vitdeploy.tensorrt.golden import GOLDEN_FILE, ensure_golden, golden_inputs, load_golden

# ---- golden.npz in a real bundle ----------------------------------------------------------------
BUNDLE_CAMERAS = 3  # the shared ``bundle`` fixture's camera range: 1..3


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


def test_a_fused_preprocessing_bundle_gets_photographs_as_uint8_frames(exported):
    fused = exported("vit-test-detr", max_cameras=3, fuse_preprocess=True, source_size=(108, 192),
                     source_channel_order="BGR")
    graph = fused.manifest.graph()
    frames = golden_inputs(fused, graph, {"cameras": 3})[graph.inputs[0].name]
    assert frames.dtype == np.uint8 and frames.shape == (3, 108, 192, 3)
    assert frames.std() > 20 and not np.array_equal(frames[0], frames[1])  # a real picture, three views
    # BGR frames: the red channel of the photograph comes last
    plain = exported("vit-test-detr", max_cameras=3, fuse_preprocess=True, source_size=(108, 192))
    as_rgb = golden_inputs(plain, plain.manifest.graph(), {"cameras": 3})[graph.inputs[0].name]
    np.testing.assert_array_equal(frames[..., ::-1], as_rgb)
