"""PyTorch backend: the model itself, on the CPU or a CUDA GPU.

It takes an ``nn.Module`` that the caller built (the CLI builds it from the zoo); it never imports
``vitdeploy.models`` — dependencies point down (DESIGN.md). The module's ``forward`` returns a
dict of outputs (``PerceptionModel``) or a tuple in the manifest's output order.

For a bundle with fused preprocessing the graph takes raw uint8 frames; so does this backend: the
frames go to the device as uint8 (a quarter of the float bytes) and ``FusedPreprocess`` — the module
the graph was exported from — resizes and normalises them there. On a GPU the camera batch is
*static*: one set of device buffers per camera count, fed through pinned host memory with
asynchronous copies, and (``cuda_graphs``) the whole forward captured once as a CUDA graph and
replayed for every set, so a ViT of a few milliseconds is not dominated by kernel launches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vitdeploy.bundle import Bundle, Precision, TensorSpec
from vitdeploy.bundle.manifest import CAMERA_AXIS, Preprocessing
from vitdeploy.errors import BackendError
from vitdeploy.runtime.backends.base import Backend

#: Forward passes on a side stream before a CUDA graph is captured (cuDNN/cuBLAS pick their
#: kernels and allocate workspaces in the first ones; a capture must not).
GRAPH_WARMUP = 3


@dataclass
class _Static:
    """One camera count's buffers: pinned host input, device input, device outputs (and the
    CUDA graph that reads and writes them), pinned host outputs."""

    host_in: torch.Tensor
    device_in: torch.Tensor
    device_out: list[torch.Tensor] | None = None
    host_out: list[torch.Tensor] | None = None
    graph: object | None = None  # torch.cuda.CUDAGraph


class TorchBackend(Backend):
    """Runs ``model`` in eval mode under ``torch.inference_mode``. ``device`` is ``cpu`` or
    ``cuda[:N]``; ``precision`` fp32, or fp16 on CUDA (int8 exists only as a Q/DQ ONNX graph).

    ``preprocessing``: the bundle's; when fused, the input is raw frames (N, Hs, Ws, 3) uint8 and
    the backend preprocesses them on ``device``. ``static``: reuse one set of buffers per camera
    count (default: on CUDA); ``cuda_graphs``: capture and replay the forward (default: on CUDA;
    needs ``static``).
    """

    name = "torch"

    def __init__(self, model: nn.Module, *, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 dim_ranges: dict[str, tuple[int, int]] | None = None, device: str = "cpu",
                 precision: Precision | str = Precision.FP32, preprocessing: Preprocessing | None = None,
                 static: bool | None = None, cuda_graphs: bool | None = None):
        super().__init__(inputs=inputs, outputs=outputs, dim_ranges=dim_ranges)
        precision = Precision.parse(precision)
        if not isinstance(model, nn.Module):
            raise BackendError(f"torch backend: expected an nn.Module, got {type(model).__name__}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"torch backend: device {device!r} requested but torch sees no CUDA GPU "
                               f"(torch {torch.__version__}); use --device cpu")
        if not (device == "cpu" or device.startswith("cuda")):
            raise BackendError(f"torch backend: unknown device {device!r}; use cpu or cuda")
        if precision == Precision.INT8:
            raise BackendError("torch backend: int8 exists only as a Q/DQ ONNX graph; "
                               "use --backend onnxruntime or tensorrt for int8")
        if precision == Precision.FP16 and device == "cpu":
            raise BackendError("torch backend: fp16 needs a CUDA device; use --precision fp32 on the CPU")
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        # static buffers (and graphs) serve the one-input graphs of the camera models
        self.static = (cuda if static is None else static) and len(inputs) == 1
        self.cuda_graphs = (cuda if cuda_graphs is None else cuda_graphs) and self.static
        if self.cuda_graphs and not cuda:
            raise BackendError("torch backend: CUDA graphs need a CUDA device; use --device cuda")
        self.dtype = torch.float16 if precision == Precision.FP16 else torch.float32
        self.precision = precision
        self.model = model.eval().to(self.device, self.dtype)
        self.preprocess: nn.Module | None = None
        if preprocessing is not None and preprocessing.fused:
            from vitdeploy.runtime.fused_preprocess import FusedPreprocess

            self.preprocess = FusedPreprocess(preprocessing).eval().to(self.device)
        self.input_dtype = np.dtype(inputs[0].dtype)
        self._static: dict[tuple[int, ...], _Static] = {}
        self.graph_error: str | None = None  # why a capture failed (then the forward runs eagerly)

    # ---- the forward ----------------------------------------------------------------------------
    def _forward(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        """inputs on the device (raw uint8 frames, or the model inputs) -> outputs in manifest order."""
        if self.preprocess is not None:
            xs = (self.preprocess(xs[0]), *xs[1:])
        out = self.model(*(x.to(self.dtype) for x in xs))
        if isinstance(out, torch.Tensor):
            out = (out,)
        if isinstance(out, dict):
            missing = [o.name for o in self.outputs if o.name not in out]
            if missing:
                raise BackendError(f"torch backend: the model returned {sorted(out)}, the manifest expects "
                                   f"{[o.name for o in self.outputs]}; is it the bundle's model?")
            return [out[o.name] for o in self.outputs]
        if len(out) != len(self.outputs):
            raise BackendError(f"torch backend: the model returned {len(out)} outputs, the manifest "
                               f"expects {len(self.outputs)}; is it the bundle's model?")
        return list(out)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        arrays = [np.ascontiguousarray(feed[s.name]) for s in self.inputs]
        with torch.inference_mode():
            values = self._run_static(arrays[0]) if self.static else self._run_eager(arrays)
        self.last_timing.total_ms = (time.perf_counter() - start) * 1e3
        return {o.name: v for o, v in zip(self.outputs, values, strict=True)}

    def _run_eager(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        values = [v.float().cpu().numpy() for v in self._forward(*(torch.from_numpy(a).to(self.device) for a in arrays))]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return values

    def _run_static(self, arr: np.ndarray) -> list[np.ndarray]:
        """Copy into this shape's pinned buffer, then to the device (asynchronously), run the
        forward (a CUDA graph replay where captured), copy the outputs back; returned arrays are
        copies, so the next set cannot change them."""
        st = self._buffers(arr)
        st.host_in.numpy()[...] = arr
        st.device_in.copy_(st.host_in, non_blocking=True)
        if st.graph is not None:
            st.graph.replay()
        else:
            st.device_out = self._forward(st.device_in)
        if st.host_out is None:
            st.host_out = [torch.empty(v.shape, dtype=torch.float32, pin_memory=self.device.type == "cuda")
                           for v in st.device_out]
        for host, dev in zip(st.host_out, st.device_out, strict=True):
            host.copy_(dev, non_blocking=True)
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        return [h.numpy().copy() for h in st.host_out]

    def _buffers(self, arr: np.ndarray) -> _Static:
        st = self._static.get(arr.shape)
        if st is None:
            dtype = torch.from_numpy(arr[:0]).dtype
            pinned = self.device.type == "cuda"
            st = _Static(host_in=torch.empty(arr.shape, dtype=dtype, pin_memory=pinned),
                         device_in=torch.empty(arr.shape, dtype=dtype, device=self.device))
            if self.preprocess is None:
                st.device_in = st.device_in.to(self.dtype)
            self._static[arr.shape] = st
            if self.cuda_graphs:
                st.host_in.numpy()[...] = arr
                st.device_in.copy_(st.host_in)
                self._capture(st)
        return st

    def _capture(self, st: _Static) -> None:
        """Warm up on a side stream, then capture the forward on ``st``'s buffers. A model that
        cannot be captured (a host sync, a dynamic shape) runs eagerly; ``graph_error`` says why."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(GRAPH_WARMUP):
                self._forward(st.device_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                st.device_out = self._forward(st.device_in)
        except Exception as exc:  # noqa: BLE001 - reported in describe(), the forward still runs
            self.graph_error = f"{type(exc).__name__}: {exc}"
            st.device_out = None
            return
        st.graph = graph

    def close(self) -> None:
        self.model = None
        self.preprocess = None
        self._static.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def describe(self) -> dict[str, str]:
        graphs = "on" if self.cuda_graphs and self.graph_error is None else "off"
        info = {"backend": self.name, "torch": torch.__version__, "device": str(self.device),
                "precision": self.precision.value, "static_batch": "on" if self.static else "off",
                "cuda_graphs": graphs if self.graph_error is None else f"off ({self.graph_error})",
                "preprocessing": "fused, on the device" if self.preprocess is not None else "on the CPU"}
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info


def from_bundle(bundle: Bundle, *, model: nn.Module | None, precision: Precision | str = Precision.FP32,
                device: str = "cpu", graph: str | None = None, static: bool | None = None,
                cuda_graphs: bool | None = None) -> TorchBackend:
    """``model`` (built by the caller, weights loaded, grid set to the manifest's image size)
    described by the bundle's ``graph``; a fused bundle's frames are preprocessed on ``device``."""
    if model is None:
        raise BackendError("the torch backend runs the PyTorch model itself: build it (the CLI does, from "
                           "the manifest's model name and checkpoint) and pass model=...")
    g = bundle.manifest.graph(graph)
    return TorchBackend(model, inputs=g.inputs, outputs=g.outputs,
                        dim_ranges={CAMERA_AXIS: (1, bundle.manifest.max_cameras)}, device=device,
                        precision=precision, preprocessing=bundle.manifest.preprocessing, static=static,
                        cuda_graphs=cuda_graphs)
