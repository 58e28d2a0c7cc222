"""Golden inputs and FP32 reference outputs in the bundle (what engines are judged on)."""


import numpy as np
import pytest

from vitdeploy.bundle import Precision
from vitdeploy.runtime.backends.onnxruntime import run_on_cpu
from vitdeploy.tensorrt.agreement import check_engine
from vitdeploy.tensorrt.errors import BuildError
from vitdeploy.tensorrt.golden import GOLDEN_FILE, TASK_FRAMES, ensure_golden, golden_inputs, load_golden

# ---- golden.npz in a real bundle ----------------------------------------------------------------
BUNDLE_CAMERAS = 3  # the shared ``bundle`` fixture's camera range: 1..3


def test_golden_is_made_once_from_fp32_onnxruntime_and_reused(bundle):
    graph = bundle.manifest.graph()
    made = ensure_golden(bundle, graph, dims={"cameras": (1, 3, 3)})
    path = bundle.file(GOLDEN_FILE)
    # a detector is judged by its task agreement too: a pool of TASK_FRAMES frames, more than the 3 cameras
    assert path.is_file() and made.frames == TASK_FRAMES
    images = made.inputs["images"]
    assert images.shape == (TASK_FRAMES, 3, 64, 96) and images.dtype == np.float32
    assert not np.allclose(images[0], images[1])  # a different frame each
    assert -3 < images.mean() < 3  # normalised pictures, not raw pixels
    assert sum("driving scene" in s for s in made.sources) == 10 and sum("photograph" in s for s in made.sources) == 2
    ref = run_on_cpu(bundle.onnx_path(), made.inputs)  # made in batches of 3; one batch of 12 gives the same
    np.testing.assert_allclose(made.outputs["logits"], ref["logits"], rtol=1e-5, atol=1e-5)

    stamp = path.stat().st_mtime_ns
    again = ensure_golden(bundle, graph, dims={"cameras": (1, 2, 2)})
    assert path.stat().st_mtime_ns == stamp  # reused, not remade
    np.testing.assert_array_equal(again.inputs["images"], images)
    assert load_golden(path)["model"].onnx_sha256 == graph.variant("fp32").sha256
    assert load_golden(path)["model"].sources == made.sources


def test_golden_is_remade_when_the_fp32_onnx_changes(bundle):
    graph = bundle.manifest.graph()
    ensure_golden(bundle, graph, dims={"cameras": (1, 3, 3)})
    graph.variant("fp32").sha256 = "0" * 64  # as after a re-export
    remade = ensure_golden(bundle, graph, dims={"cameras": (1, 3, 3)})
    assert remade.onnx_sha256 == "0" * 64
    assert load_golden(bundle.file(GOLDEN_FILE))["model"].onnx_sha256 == "0" * 64


def test_check_engine_runs_the_whole_pool_in_batches_of_each_camera_count(bundle):
    graph = bundle.manifest.graph()
    golden = ensure_golden(bundle, graph, dims={"cameras": (1, 3, 3)})
    onnx = bundle.onnx_path()
    seen = []

    def engine(feeds):
        seen.append(feeds["images"].shape[0])
        return run_on_cpu(onnx, feeds)

    report = check_engine(engine, golden, graph, precision=Precision.FP32, camera_counts=[1, 5])
    # 12 frames: 12 batches of 1; 3 batches of 5, the last one filled up with 3 frames from the start
    assert seen == [1] * 12 + [5] * 3 and report.passed, report.summary()
    assert set(report.cases) == {"cameras=1", "cameras=5"} and report.to_record()["reference"].endswith("(12 frames)")
    batches = golden.batches(graph, 5)
    assert [b.rows for b in batches] == [5, 5, 2]
    np.testing.assert_array_equal(batches[-1].inputs["images"][2:], golden.inputs["images"][:3])

    def broken(feeds):
        out = run_on_cpu(onnx, feeds)
        out["boxes"] = out["boxes"] + 0.05
        return out

    bad = check_engine(broken, golden, graph, precision=Precision.FP16, camera_counts=[1, 3])
    assert not bad.passed and "boxes" in bad.summary()
    with pytest.raises(BuildError, match="give 1 or more"):
        golden.batches(graph, 0)
    inputs, ref = golden.take(graph, 2)  # the first frames, as one batch
    np.testing.assert_array_equal(inputs["images"], golden.inputs["images"][:2])
    np.testing.assert_array_equal(ref["boxes"], golden.outputs["boxes"][:2])
    with pytest.raises(BuildError, match="holds 12 frames"):
        golden.take(graph, 13)


def test_a_graph_without_a_camera_axis_runs_its_frames_together(bundle):
    graph = bundle.manifest.graph()
    golden = ensure_golden(bundle, graph, dims={"cameras": (1, 3, 3)})
    graph.outputs[0].shape[0] = 1  # as a rig-level output would be
    assert [b.rows for b in golden.batches(graph, golden.frames)] == [golden.frames]
    with pytest.raises(BuildError, match="without a leading camera axis"):
        golden.batches(graph, 3)


def test_an_unreadable_golden_file_is_a_clear_error(bundle):
    bundle.file(GOLDEN_FILE).write_bytes(b"not an npz")
    with pytest.raises(BuildError, match="delete it and build again"):
        ensure_golden(bundle, bundle.manifest.graph(), dims={"cameras": (1, 3, 3)})


def test_a_fused_preprocessing_bundle_gets_pictures_as_uint8_frames(exported):
    fused = exported("vit-test-detr", max_cameras=3, fuse_preprocess=True, source_size=(108, 192),
                     source_channel_order="BGR")
    graph = fused.manifest.graph()
    feeds, sources = golden_inputs(fused, graph, {"cameras": 6})
    frames = feeds[graph.inputs[0].name]
    assert frames.dtype == np.uint8 and frames.shape == (6, 108, 192, 3)
    assert frames.std() > 20 and not np.array_equal(frames[0], frames[1])  # real pictures, different ones
    assert "driving scene" in sources[0] and sources[-1] == "photograph (view 0)"
    # BGR frames: the red channel of the picture comes last
    plain = exported("vit-test-detr", max_cameras=3, fuse_preprocess=True, source_size=(108, 192))
    as_rgb = golden_inputs(plain, plain.manifest.graph(), {"cameras": 6})[0][graph.inputs[0].name]
    np.testing.assert_array_equal(frames[..., ::-1], as_rgb)


def test_a_rig_graph_is_judged_on_real_geometry_and_whole_frame_sets(rig3d_bundle, bundle_copy, invoke):
    from vitdeploy.runtime.rig import synthetic_rig
    from vitdeploy.runtime.rig_geometry import rig_inputs

    rig = bundle_copy(rig3d_bundle)
    made = ensure_golden(rig, rig.manifest.graph(), dims={"cameras": (1, 6, 6)})
    geometry = rig_inputs(synthetic_rig(6, size=(64, 96)), rig.manifest)  # the exported rig's, not random numbers
    np.testing.assert_allclose(made.inputs["intrinsics"], geometry["intrinsics"], rtol=1e-6)
    np.testing.assert_allclose(made.inputs["cam_to_ego"], geometry["cam_to_ego"], atol=1e-6)
    assert made.frames == 6 and made.outputs["boxes3d"].shape == (1, 10, 8)  # one set, one answer
    # the trtexec line: one profile over the three inputs that share the camera axis
    r = invoke("build", rig.path, "--print-trtexec", "--trt-version", "10")
    assert r.exit_code == 0, r.output
    assert "--minShapes=images:1x3x64x96,intrinsics:1x3x3,cam_to_ego:1x4x4" in r.output
    assert "--maxShapes=images:6x3x64x96,intrinsics:6x3x3,cam_to_ego:6x4x4" in r.output
