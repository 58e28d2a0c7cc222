"""The torch backend's paths for the GPU, checked on the CPU: fused preprocessing on the device,
static camera batches (the buffers CUDA graphs replay on). The CUDA-only parts (pinned memory,
graph capture, FP16) are marked ``gpu`` (deselected by default, skipped without a GPU;
`python tools/gpu_check.py` runs them)."""

import numpy as np
import pytest
import torch

from vitdeploy.errors import BackendError
from vitdeploy.models.zoo import get_card
from vitdeploy.runtime.backends import open_backend
from vitdeploy.runtime.backends.torch import from_bundle

SOURCE = (108, 192)


def gpu(test):
    """Marked ``gpu`` and skipped where torch sees no CUDA GPU."""
    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test))



@pytest.fixture(scope="module")
def fused(exported, tmp_path_factory):
    """A fused-preprocessing bundle of vit-test-detr and the PyTorch model with its weights."""
    model = get_card("vit-test-detr").build()
    weights = tmp_path_factory.mktemp("weights") / "detr.pt"
    torch.save(model.state_dict(), weights)
    bundle = exported("vit-test-detr", max_cameras=4, checkpoint=str(weights), fuse_preprocess=True,
                      source_size=SOURCE, source_channel_order="BGR")
    model.encoder.set_grid(model.encoder.grid_for(*bundle.manifest.image_size))
    return bundle, model


def frames(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *SOURCE, 3), dtype=np.uint8)


def test_a_fused_bundle_takes_raw_frames_and_matches_its_graph(fused):
    bundle, model = fused
    x = frames(3)
    with open_backend("torch", bundle, model=model) as backend:
        assert backend.describe()["preprocessing"] == "fused, on the device"
        out = backend.infer({"frames": x})
    with open_backend("onnxruntime", bundle) as ort:
        ref = ort.infer({"frames": x})
    for name in ref:
        np.testing.assert_allclose(out[name], ref[name], atol=1e-4, rtol=1e-3)


def test_static_batches_give_the_eager_results_in_arrays_of_their_own(fused):
    bundle, model = fused
    with from_bundle(bundle, model=model, static=True) as static, from_bundle(bundle, model=model) as eager:
        assert static.describe()["static_batch"] == "on" and eager.describe()["static_batch"] == "off"
        first = static.infer({"frames": frames(3, seed=1)})
        kept = {k: v.copy() for k, v in first.items()}
        second = static.infer({"frames": frames(3, seed=2)})
        two = static.infer({"frames": frames(2, seed=3)})  # another camera count: its own buffers
        assert not np.array_equal(first["logits"], second["logits"])
        for name in first:
            assert np.array_equal(first[name], kept[name])  # the next set did not write into it
            np.testing.assert_array_equal(second[name], eager.infer({"frames": frames(3, seed=2)})[name])
            np.testing.assert_array_equal(two[name], eager.infer({"frames": frames(2, seed=3)})[name])
        assert sorted(static._static) == [(2, *SOURCE, 3), (3, *SOURCE, 3)]


def test_cuda_graphs_are_refused_on_the_cpu(fused):
    bundle, model = fused
    with pytest.raises(BackendError, match="CUDA graphs need a CUDA device"):
        from_bundle(bundle, model=model, cuda_graphs=True, static=True)


@gpu
def test_cuda_graph_replays_give_the_eager_results(fused):
    bundle, model = fused
    with from_bundle(bundle, model=model, device="cuda") as graphs, \
            from_bundle(bundle, model=model, device="cuda", static=False, cuda_graphs=False) as eager:
        info = graphs.describe()
        assert info["cuda_graphs"] == "on" and info["static_batch"] == "on", info
        for seed in range(3):  # replays on new frames, not the captured ones
            x = frames(4, seed=seed)
            got, ref = graphs.infer({"frames": x}), eager.infer({"frames": x})
            for name in ref:
                np.testing.assert_allclose(got[name], ref[name], atol=1e-4, rtol=1e-3)
        st = graphs._static[(4, *SOURCE, 3)]
        assert st.host_in.is_pinned() and all(h.is_pinned() for h in st.host_out) and st.graph is not None


@gpu
def test_fp16_on_the_gpu_agrees_with_onnxruntime_fp32(fused):
    bundle, model = fused
    x = frames(2, seed=5)
    with from_bundle(bundle, model=model, device="cuda", precision="fp16") as half:
        got = half.infer({"frames": x})
    with open_backend("onnxruntime", bundle) as ort:
        ref = ort.infer({"frames": x})
    for name in ref:
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], ref[name], atol=5e-2, rtol=5e-2)
