"""Exporting the rig-level 3D model as one graph: parity at 1 and 6 cameras, geometry as input."""

import numpy as np
import pytest
import torch

from vitdeploy.bundle.manifest import Preprocessing
from vitdeploy.errors import BackendError, ExportError
from vitdeploy.exporter.lint import lint_model
from vitdeploy.exporter.onnx_export import export_graph
from vitdeploy.exporter.parity import check_parity, run_torch
from vitdeploy.exporter.rig_graphs import rig_graph_spec, synthetic_rig_feed
from vitdeploy.models.rig_model import get_rig3d
from vitdeploy.runtime.backends.onnxruntime import OnnxRuntimeBackend, cpu_session

SPEC = get_rig3d("vit-test-rig3d")
PREPROCESSING = Preprocessing(image_size=SPEC.image_size)


@pytest.fixture(scope="module")
def rig_graph(tmp_path_factory):
    torch.manual_seed(0)
    model = SPEC.build(fused_attention=False).eval()
    spec = rig_graph_spec(model, image_size=SPEC.image_size, max_cameras=6, preprocessing=PREPROCESSING)
    path = tmp_path_factory.mktemp("rig3d") / "model.onnx"
    onnx_model = export_graph(spec, path)
    return spec, path, onnx_model


def test_the_rig_graph_agrees_with_pytorch_at_one_and_six_cameras(rig_graph):
    spec, path, onnx_model = rig_graph
    parity = check_parity(spec, path)
    assert parity.passed, parity.worst()
    assert set(parity.cases) == {"random@cameras=1", "random@cameras=6", "synthetic-rig@cameras=6"}
    assert lint_model(onnx_model) == []
    # plain ONNX ops only: no custom domain, nothing TensorRT would need a plugin for
    assert {n.domain for n in onnx_model.graph.node} <= {""}
    session = cpu_session(path)
    for cameras in (1, 6):
        feeds = spec.make_inputs({"cameras": cameras}, np.random.default_rng(cameras))
        logits, boxes = session.run(None, feeds)
        assert logits.shape == (1, SPEC.head.num_queries, SPEC.head.num_classes + 1)
        assert boxes.shape == (1, SPEC.head.num_queries, 8)


def test_a_recalibrated_rig_needs_new_numbers_not_a_new_graph(rig_graph):
    spec, path, _ = rig_graph
    feed = synthetic_rig_feed(cameras=6, image_size=SPEC.image_size, preprocessing=PREPROCESSING)
    moved = dict(feed)
    moved["cam_to_ego"] = feed["cam_to_ego"].copy()
    moved["cam_to_ego"][:, 2, 3] += 0.2  # the cameras sit 20 cm higher
    session = cpu_session(path)
    names = [o.name for o in session.get_outputs()]
    before = dict(zip(names, session.run(None, feed), strict=True))
    after = dict(zip(names, session.run(None, moved), strict=True))
    expected = run_torch(spec, moved)
    for name in names:
        np.testing.assert_allclose(after[name], expected[name], atol=1e-4, rtol=1e-3)
    assert not np.allclose(after["logits"], before["logits"], atol=1e-6)


def test_a_feed_whose_camera_counts_disagree_is_refused_by_the_backend(rig_graph):
    spec, path, _ = rig_graph
    feed = spec.make_inputs({"cameras": 6}, np.random.default_rng(0))
    with OnnxRuntimeBackend(path, inputs=spec.inputs, outputs=spec.outputs, dim_ranges=spec.dim_ranges) as backend:
        assert backend.infer(feed)["boxes3d"].shape == (1, SPEC.head.num_queries, 8)
        with pytest.raises(BackendError, match=r"inputs disagree on cameras \(6 vs 5\)"):
            backend.infer({**feed, "intrinsics": feed["intrinsics"][:5]})
        seven = {k: np.concatenate([v, v[:1]]) for k, v in feed.items()}
        with pytest.raises(BackendError, match=r"cameras=7, the model takes 1..6"):
            backend.infer(seven)


def test_more_cameras_than_the_model_has_slots_is_an_export_error():
    model = SPEC.build(fused_attention=False).eval()
    with pytest.raises(ExportError, match="6 camera slots"):
        rig_graph_spec(model, image_size=SPEC.image_size, max_cameras=8, preprocessing=PREPROCESSING)


# ---- through `vitdeploy export` -------------------------------------------------------------------------

def test_the_zoo_export_records_the_geometry_and_proves_parity_at_one_and_six_cameras(rig3d_bundle):
    m = rig3d_bundle.manifest
    graph = m.graph()
    assert m.head.kind == "rig3d" and m.max_cameras == 6  # the model's camera slots, not the per-camera default 8
    assert [(s.name, s.shape) for s in graph.inputs] == [("images", ["cameras", 3, 64, 96]),
                                                         ("intrinsics", ["cameras", 3, 3]),
                                                         ("cam_to_ego", ["cameras", 4, 4])]
    assert [(s.name, s.shape) for s in graph.outputs] == [("logits", [1, 10, 7]), ("boxes3d", [1, 10, 8])]
    assert graph.parity.passed and set(graph.parity.cases) == {"random@cameras=1", "random@cameras=6",
                                                               "synthetic-rig@cameras=6"}
    assert [f for f in graph.lint if f.severity == "error"] == []
    geometry = m.head.config["geometry"]  # what the runtime falls back to only when told to
    assert [c["name"] for c in geometry] == ["front", "front_left", "front_right", "rear_left", "rear_right", "rear"]
    assert all(c["image_size"] == [64, 96] for c in geometry) and geometry[1]["yaw_deg"] > 0


def test_more_cameras_than_the_model_has_slots_for_is_refused_before_any_work(invoke, tmp_path):
    result = invoke("export", "vit-test-rig3d", "--out", tmp_path / "b", "--max-cameras", "8")
    assert result.exit_code != 0
    assert "at most 6 cameras" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b" / "manifest.json").exists()
