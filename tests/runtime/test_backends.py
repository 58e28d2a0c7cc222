"""The backend contract: validated feeds with clear errors; onnxruntime and torch agree."""

import importlib.util

import numpy as np
import pytest

from vitdeploy.errors import BackendError, VitDeployError
from vitdeploy.runtime.backends import open_backend
from vitdeploy.runtime.backends.onnxruntime import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def ort_backend(exported):
    detr = exported("vit-test-detr", max_cameras=6)
    with open_backend("onnxruntime", detr, precision="fp32", device="cpu") as backend:
        yield backend


def batch(n, h=64, w=96, dtype=np.float32):
    return np.random.default_rng(0).standard_normal((n, 3, h, w)).astype(dtype)


def test_onnxruntime_runs_a_camera_batch(ort_backend, bundle):
    assert isinstance(ort_backend, OnnxRuntimeBackend)
    out = ort_backend.infer({"images": batch(6)})
    assert set(out) == {"logits", "boxes"}
    assert out["logits"].shape[0] == 6 and out["boxes"].shape == (6, out["boxes"].shape[1], 4)
    assert ort_backend.last_timing.total_ms > 0
    assert ort_backend.describe()["provider"] == "CPUExecutionProvider"


def test_onnxruntime_session_settings_reach_the_session(exported):
    """Idle threads sleep unless asked to spin (they share the cores with the camera decoders);
    the thread count is the one given; the same outputs either way."""
    from vitdeploy.runtime.backends.onnxruntime import SessionSettings, from_bundle

    detr = exported("vit-test-detr", max_cameras=6)
    outs = []
    for settings in (SessionSettings(), SessionSettings(threads=1, spinning=True)):
        with from_bundle(detr, settings=settings) as backend:
            options = backend.session.get_session_options()
            assert options.get_session_config_entry("session.intra_op.allow_spinning") == (
                "1" if settings.spinning else "0")
            assert options.intra_op_num_threads == (settings.threads or 0)
            assert backend.describe()["spinning"] == str(settings.spinning).lower()
            outs.append(backend.infer({"images": batch(2)}))
    np.testing.assert_allclose(outs[0]["logits"], outs[1]["logits"], atol=1e-5)


@pytest.mark.parametrize(("feed", "message"), [
    ({"pixels": batch(2)}, r"feed has inputs \['pixels'\], the model takes \['images'\]"),
    ({"images": batch(2, dtype=np.float64)}, "has dtype float64, the model takes float32"),
    ({"images": batch(2, h=32)}, r"axis 2 must be 64"),
    ({"images": batch(2)[0]}, r"has shape \(3, 64, 96\), the model takes \(cameras, 3, 64, 96\)"),
    ({"images": batch(7)}, r"has cameras=7, the model takes 1..6 \(re-export with a larger --max-cameras\)"),
])
def test_a_wrong_feed_is_a_clear_backend_error(ort_backend, feed, message):
    with pytest.raises(BackendError, match=message):
        ort_backend.infer(feed)


def test_an_unknown_provider_lists_the_available_ones(bundle):
    with pytest.raises(BackendError, match=r"requested provider CUDAExecutionProvider .*available: \[.*'CPUExecutionProvider'"):
        open_backend("onnxruntime", bundle, device="cuda")
    with pytest.raises(BackendError, match=r"requested provider NoSuchExecutionProvider"):
        open_backend("onnxruntime", bundle, device="NoSuchExecutionProvider")


def test_unknown_or_missing_backends(bundle):
    with pytest.raises(BackendError, match="unknown backend 'tvm'; choose one of: onnxruntime, torch, tensorrt"):
        open_backend("tvm", bundle)
    if importlib.util.find_spec("tensorrt") is None:  # without TensorRT the backend says what to install
        with pytest.raises(VitDeployError, match="tensorrt"):
            open_backend("tensorrt", bundle, device="cuda")


def test_torch_backend_matches_onnxruntime(exported, tmp_path_factory):
    """Same weights in both: the torch backend agrees with the exported graph on onnxruntime."""
    import torch

    from vitdeploy.models.zoo import get_card

    torch.manual_seed(0)
    model = get_card("vit-test-detr").build()
    weights = tmp_path_factory.mktemp("weights") / "detr.pt"
    torch.save(model.state_dict(), weights)
    bundle = exported("vit-test-detr", max_cameras=6, checkpoint=str(weights))
    model.encoder.set_grid(model.encoder.grid_for(*bundle.manifest.image_size))
    with pytest.raises(BackendError, match="pass model="):
        open_backend("torch", bundle)
    with pytest.raises(BackendError, match="int8 exists only as a Q/DQ ONNX graph"):
        open_backend("torch", bundle, model=model, precision="int8")
    x = batch(3)
    with open_backend("torch", bundle, model=model) as backend:
        out = backend.infer({"images": x})
        with pytest.raises(BackendError, match="has cameras=7"):
            backend.infer({"images": batch(7)})
    with open_backend("onnxruntime", bundle) as ort:
        ref = ort.infer({"images": x})
    assert set(out) == {"logits", "boxes"} and out["boxes"].dtype == np.float32
    for name in ref:
        np.testing.assert_allclose(out[name], ref[name], atol=1e-4, rtol=1e-3)
