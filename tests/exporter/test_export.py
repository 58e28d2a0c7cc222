import numpy as np
import onnx
import pytest

from vitdeploy.bundle import Bundle
from vitdeploy.errors import BundleError, ExportError, ParityError
from vitdeploy.exporter.export import ExportOptions, export_model
from vitdeploy.runtime.backends.onnxruntime import cpu_session

HEADS = ["vit-test-cls", "vit-test-cait", "vit-test-detr", "vit-test-mask", "vit-test-tab"]


@pytest.mark.parametrize("name", HEADS)
def test_every_head_exports_with_parity_at_1_and_6_cameras(exported, name):
    bundle = exported(name, max_cameras=6)
    reopened = Bundle.open(bundle.path)
    graph = reopened.manifest.graph()
    assert graph.parity.passed
    assert set(graph.parity.cases) >= {"random@cameras=1", "random@cameras=6", "photo@cameras=2"}
    for errors in graph.parity.cases.values():
        for err in errors.values():
            assert err.max_abs < 1e-3
    session = cpu_session(reopened.onnx_path("fp32"))
    h, w = reopened.manifest.image_size
    for cams in (1, 6):
        outs = session.run(None, {"images": np.random.default_rng(0).standard_normal((cams, 3, h, w), np.float32)})
        assert all(o.shape[0] == cams for o in outs)
    model = onnx.load(reopened.onnx_path("fp32"))
    ops = {n.op_type for n in model.graph.node}
    assert "LayerNormalization" in ops  # opset 18: one op, not ReduceMean/Pow
    assert graph.lint == []
    assert not list(reopened.path.glob(".*.tmp"))


def test_manifest_records_what_later_stages_need(exported):
    m = exported("vit-test-detr", max_cameras=6).manifest
    assert m.head.kind == "detr" and m.max_cameras == 6 and m.opset == 18
    assert m.head.scores.value == "softmax" and m.head.boxes.layout.value == "cxcywh"
    assert m.head.config == {"num_classes": 6, "num_queries": 10}
    assert m.graph().outputs[0].meaning == "class logits per query; the last class is 'no object'"
    assert m.class_names[:2] == ["car", "truck"]
    assert m.graph().outputs[1].name == "boxes"
    assert m.graph().inputs[0].shape == ["cameras", 3, 64, 96]
    assert m.preprocessing.image_size == (64, 96)


def test_non_square_automotive_size(tmp_path):
    b = export_model("vit-test-detr", out=tmp_path,
                     options=ExportOptions(image_size=(128, 224), max_cameras=2)).bundle
    assert b.manifest.graph().inputs[0].shape == ["cameras", 3, 128, 224]


def test_opset_17_keeps_layernorm_one_op(tmp_path):
    b = export_model("vit-test-cls", out=tmp_path, options=ExportOptions(opset=17, max_cameras=2)).bundle
    model = onnx.load(b.onnx_path())
    assert next(o.version for o in model.opset_import if o.domain == "") == 17
    assert any(n.op_type == "LayerNormalization" for n in model.graph.node)


def test_image_size_not_multiple_of_patch(tmp_path):
    with pytest.raises(ExportError, match="not a multiple of the patch size 16 .* try 448x800"):
        export_model("vit-test-detr", out=tmp_path, options=ExportOptions(image_size=(450, 800)))
    assert not any(tmp_path.iterdir())


def test_parity_failure_writes_nothing(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"previous")
    with pytest.raises(ParityError, match="disagrees with PyTorch"):
        export_model("vit-test-cls", out=tmp_path, options=ExportOptions(atol=0.0, rtol=0.0, max_cameras=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert (tmp_path / "model.onnx").read_bytes() == b"previous"


def test_unwritable_output(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(BundleError, match="not a folder"):
        export_model("vit-test-cls", out=target)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):  # root ignores permission bits
            pytest.skip("running as root: permission bits do not stop writes")
        with pytest.raises(BundleError, match="cannot write"):
            export_model("vit-test-cls", out=ro / "b")
    finally:
        ro.chmod(0o700)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vit-base-cls", "vit-base-cait", "vit-base-detr", "vit-base-mask", "vit-base-tab"])
def test_base_models_export(tmp_path, name):
    b = export_model(name, out=tmp_path, options=ExportOptions(max_cameras=2))
    assert b.bundle.manifest.graph().parity.passed


def test_single_camera_bundle(tmp_path):
    b = export_model("vit-test-cls", out=tmp_path, options=ExportOptions(max_cameras=1)).bundle
    assert b.manifest.max_cameras == 1 and b.manifest.graph().parity.passed


def _calibrated_and_built(path):
    """Make ``path`` look like a bundle that was calibrated and built since its export."""
    from vitdeploy.bundle import Bundle, Engine, Precision, Variant

    b = Bundle.open(path)
    for name in ("model.int8.onnx", "calibration_report.int8.json", "calibration.int8.log", "model.int8.orin.plan",
                 "notes.txt"):
        (path / name).write_bytes(b"old")
    b.manifest.graph().set_variant(Variant(Precision.INT8, "model.int8.onnx", sha256="0" * 64, details={
        "report": "calibration_report.int8.json", "log": "calibration.int8.log"}))
    b.manifest.calibration["int8"] = {"report": "calibration_report.int8.json"}
    b.manifest.engines.append(Engine(file="model.int8.orin.plan", graph="model", precision=Precision.INT8,
                                     tensorrt_version="10.3", cuda_version="12.6", gpu_name="Orin",
                                     compute_capability="8.7", profile={}, onnx_sha256="0", plan_sha256="0",
                                     build_seconds=1.0, built_at=""))
    b.save()


def test_reexport_removes_the_old_models_graphs_reports_and_engines(tmp_path):
    from vitdeploy.bundle import Bundle

    export_model("vit-test-cls", out=tmp_path, options=ExportOptions(max_cameras=2))
    _calibrated_and_built(tmp_path)
    with pytest.raises(ParityError):  # a failed export leaves the bundle as it was
        export_model("vit-test-cls", out=tmp_path, options=ExportOptions(atol=0.0, rtol=0.0, max_cameras=2))
    assert Bundle.open(tmp_path).manifest.graph().variant("int8") is not None
    assert (tmp_path / "model.int8.onnx").is_file() and (tmp_path / "model.int8.orin.plan").is_file()

    export_model("vit-test-cls", out=tmp_path, options=ExportOptions(max_cameras=2))
    # before: the old model's INT8 graph, report, log and engine stayed beside the new model.onnx
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "model.onnx", "notes.txt"]
    m = Bundle.open(tmp_path).manifest
    assert [v.precision.value for v in m.graph().variants] == ["fp32"] and not m.engines and not m.calibration


def test_parity_runs_a_per_camera_graph_two_cameras_at_a_time(monkeypatch, tmp_path):
    """Peak memory stays that of two cameras whatever --max-cameras (sam-vit-b at 8 went over 24 GB)."""
    from vitdeploy.exporter import parity

    seen = []
    real = parity.run_torch
    monkeypatch.setattr(parity, "run_torch", lambda spec, feeds: seen.append(len(feeds["images"])) or real(spec, feeds))
    bundle = export_model("vit-test-cls", out=tmp_path, options=ExportOptions(max_cameras=7)).bundle
    assert seen == [1, 2, 2, 2, 1, 2]  # random@cameras=1; random@cameras=7 in four runs; the photo at 2
    record = bundle.manifest.graph().parity
    assert record.passed and set(record.cases) == {"random@cameras=1", "random@cameras=7", "photo@cameras=2"}
    assert all(0 < e.max_abs < 1e-3 for e in record.cases["random@cameras=7"].values())


def test_a_graph_that_mixes_cameras_is_checked_whole():
    import numpy as np
    import torch

    from vitdeploy.bundle import TensorSpec
    from vitdeploy.exporter.graphs import GraphSpec
    from vitdeploy.exporter.parity import camera_chunks

    spec = GraphSpec(name="rig", file="rig.onnx", module=torch.nn.Identity(),
                     inputs=[TensorSpec("images", "float32", ["cameras", 3, 8, 8])],
                     outputs=[TensorSpec("boxes", "float32", [10, 4])],  # one answer per frame set
                     trace_dims={"cameras": 2}, dim_ranges={"cameras": (1, 6)}, make_inputs=lambda d, r: {})
    feeds = {"images": np.zeros((6, 3, 8, 8), np.float32)}
    assert [len(c["images"]) for c in camera_chunks(spec, feeds)] == [6]
