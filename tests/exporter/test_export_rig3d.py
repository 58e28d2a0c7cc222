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
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = SPEC.build(fused_attention=False).eval()
    spec = rig_graph_spec(model, image_size=SPEC.image_size, max_cameras=6, preprocessing=PREPROCESSING)
    path = tmp_path_factory.mktemp("rig3d") / "model.onnx"
    onnx_model = export_graph(spec, path)
    return spec, path, onnx_model


def test_the_rig_graph_agrees_with_pytorch_at_one_and_six_cameras(exported):
    spec, path, onnx_model = exported
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


def test_a_recalibrated_rig_needs_new_numbers_not_a_new_graph(exported):
    spec, path, _ = exported
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


def test_a_feed_whose_camera_counts_disagree_is_refused_by_the_backend(exported):
    spec, path, _ = exported
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
