"""Preprocessing fused into the graph computes what the CPU path computes (issue: raw frames in)."""

import numpy as np
import onnx
import pytest
import torch

from vitdeploy.bundle.manifest import Preprocessing
from vitdeploy.errors import DataError, ExportError
from vitdeploy.exporter.export import ExportOptions, export_model
from vitdeploy.exporter.fused_preprocess import FusedPreprocess
from vitdeploy.runtime.backends.onnxruntime import cpu_session
from vitdeploy.runtime.preprocess import prepare_batch, preprocess_frames


def _frames(n, size, seed=0):
    from vitdeploy.data.scenes import SceneGenerator

    gen = SceneGenerator(size=size, cameras=6, seed=seed, with_masks=False)
    return [gen.frame(3, i % 6).image for i in range(n)]


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_fused_module_matches_cpu_preprocessing(resize, order):
    spec = Preprocessing(image_size=(64, 96), resize=resize, fused=True, source_size=(108, 192),
                         source_channel_order=order)
    frames = _frames(3, (108, 192))
    raw, raw_boxes = prepare_batch(frames, spec)
    assert raw.dtype == np.uint8 and raw.shape == (3, 108, 192, 3)
    fused = FusedPreprocess(spec)(torch.from_numpy(raw)).numpy()
    cpu, cpu_boxes = preprocess_frames(frames, Preprocessing(image_size=(64, 96), resize=resize))
    # OpenCV's uint8 resize uses fixed-point weights and rounds to uint8; the graph computes in
    # float: they differ by under one grey level, i.e. 1 / (255 * std) after normalisation.
    diff = np.abs(fused - cpu) * (255 * np.asarray(spec.std, np.float32)).reshape(1, 3, 1, 1)
    assert diff.max() < 1.0
    assert diff.mean() < 0.3
    assert raw_boxes == cpu_boxes


def test_fused_bundle_agrees_with_the_unfused_model(tmp_path):
    from vitdeploy.models.zoo import build_model

    weights = tmp_path / "w.pt"
    torch.save(build_model("vit-test-detr").state_dict(), weights)
    plain = export_model("vit-test-detr", out=tmp_path / "plain", checkpoint=weights,
                         options=ExportOptions(max_cameras=4)).bundle
    fused = export_model("vit-test-detr", out=tmp_path / "fused", checkpoint=weights,
                         options=ExportOptions(max_cameras=4, fuse_preprocess=True, source_size=(108, 192),
                             source_channel_order="BGR")).bundle
    m = fused.manifest
    assert m.preprocessing.fused and m.preprocessing.source_size == (108, 192)
    assert m.graph().inputs[0].dtype == "uint8" and m.graph().inputs[0].shape == ["cameras", 108, 192, 3]
    assert m.graph().lint == []  # nothing TensorRT's parser rejects
    ops = {n.name: n.op_type for n in onnx.load(fused.onnx_path()).graph.node}
    fused_ops = {ops[n] for n in m.preprocessing.fused_nodes}
    assert "Resize" in fused_ops and "Conv" not in fused_ops and "LayerNormalization" not in fused_ops

    frames = _frames(4, (108, 192), seed=3)
    raw, boxes = prepare_batch(frames, m.preprocessing)
    images, cpu_boxes = prepare_batch(frames, plain.manifest.preprocessing)
    assert boxes == cpu_boxes
    out_f = cpu_session(fused.onnx_path()).run(None, {"frames": raw})
    out_p = cpu_session(plain.onnx_path()).run(None, {"images": images})
    for f, p in zip(out_f, out_p, strict=True):
        assert np.abs(f - p).max() < 0.05  # under one grey level of input difference


def test_wrong_frame_size_is_refused_unless_resizing_is_allowed():
    spec = Preprocessing(image_size=(64, 96), fused=True, source_size=(108, 192))
    frames = _frames(1, (120, 200))
    with pytest.raises(DataError, match="frame 0 is 120x200, but the bundle's graph takes raw 108x192"):
        prepare_batch(frames, spec)
    raw, (lb,) = prepare_batch(frames, spec, allow_resize=True)
    assert raw.shape == (1, 108, 192, 3)
    assert lb.frame_size == (120, 200)


def test_fuse_needs_a_source_size(tmp_path):
    with pytest.raises(ExportError, match="needs --source-size"):
        export_model("vit-test-detr", out=tmp_path, options=ExportOptions(fuse_preprocess=True))
    assert not any(tmp_path.iterdir())


def test_fused_bundle_calibrates_with_the_graph_doing_the_preprocessing(tmp_path):
    from vitdeploy.calibration import CalibrationOptions, calibrate_bundle

    b = export_model("vit-test-detr", out=tmp_path / "b",
                     options=ExportOptions(max_cameras=4, fuse_preprocess=True, source_size=(108, 192))).bundle
    fused_nodes = set(b.manifest.preprocessing.fused_nodes)
    for precision in ("fp16", "int8"):
        result = calibrate_bundle(b.path, precision=precision,
                                  options=CalibrationOptions(samples=16, heldout=8))
        model = onnx.load(result.onnx_path)
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
        producers = {o: n for n in model.graph.node for o in n.output}
        for node in model.graph.node:
            if node.name in fused_nodes:
                # the preprocessing subgraph stays FP32: no Cast to FP16 and no Q/DQ feeding it
                assert not any(producers.get(i) is not None and producers[i].op_type in
                               ("QuantizeLinear", "DequantizeLinear") for i in node.input), node.name
                if node.op_type == "Cast":
                    to = next(a.i for a in node.attribute if a.name == "to")
                    assert to == onnx.TensorProto.FLOAT, node.name
        session = cpu_session(result.onnx_path)
        for cams in (1, 4):
            raw = np.random.default_rng(cams).integers(0, 256, (cams, 108, 192, 3), dtype=np.uint8)
            assert session.run(None, {"frames": raw})[0].shape[0] == cams
