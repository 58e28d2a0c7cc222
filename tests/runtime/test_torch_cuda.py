"""The torch backend on a CUDA GPU: pinned static batches, CUDA graphs and FP16 give the eager
FP32 results. Deselected by default (marker ``gpu``); skipped where torch sees no GPU.
`python tools/gpu_check.py` runs these and the latency comparison on a GPU machine."""

import numpy as np
import pytest
import torch

from vitdeploy.runtime.backends import open_backend
from vitdeploy.runtime.backends.torch import from_bundle

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)", allow_module_level=True)

from test_torch_backend import SOURCE, frames, fused  # noqa: E402,F401 - the fused-bundle fixture


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
