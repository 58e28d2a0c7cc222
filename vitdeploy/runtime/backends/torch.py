"""PyTorch backend: the model itself, eager, on the CPU or a CUDA GPU.

It takes an ``nn.Module`` that the caller built (the CLI builds it from the zoo); it never imports
``vitdeploy.models`` — dependencies point down (DESIGN.md). The module's ``forward`` returns a
dict of outputs (``PerceptionModel``) or a tuple in the manifest's output order.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from vitdeploy.bundle import Bundle, Precision, TensorSpec
from vitdeploy.bundle.manifest import CAMERA_AXIS
from vitdeploy.errors import BackendError
from vitdeploy.runtime.backends.base import Backend


class TorchBackend(Backend):
    """Runs ``model`` in eval mode under ``torch.inference_mode``. ``device`` is ``cpu`` or
    ``cuda[:N]``; ``precision`` fp32, or fp16 on CUDA (int8 exists only as a Q/DQ ONNX graph)."""

    name = "torch"

    def __init__(self, model: nn.Module, *, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 dim_ranges: dict[str, tuple[int, int]] | None = None, device: str = "cpu",
                 precision: Precision | str = Precision.FP32):
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
        self.dtype = torch.float16 if precision == Precision.FP16 else torch.float32
        self.precision = precision
        self.model = model.eval().to(self.device, self.dtype)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        args = [torch.from_numpy(np.ascontiguousarray(feed[s.name])).to(self.device, self.dtype)
                for s in self.inputs]
        with torch.inference_mode():
            out = self.model(*args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        if isinstance(out, dict):
            missing = [o.name for o in self.outputs if o.name not in out]
            if missing:
                raise BackendError(f"torch backend: the model returned {sorted(out)}, the manifest expects "
                                   f"{[o.name for o in self.outputs]}; is it the bundle's model?")
            values = [out[o.name] for o in self.outputs]
        else:
            if len(out) != len(self.outputs):
                raise BackendError(f"torch backend: the model returned {len(out)} outputs, the manifest "
                                   f"expects {len(self.outputs)}; is it the bundle's model?")
            values = list(out)
        result = {o.name: v.float().cpu().numpy() for o, v in zip(self.outputs, values, strict=True)}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.last_timing.total_ms = (time.perf_counter() - start) * 1e3
        return result

    def close(self) -> None:
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def describe(self) -> dict[str, str]:
        info = {"backend": self.name, "torch": torch.__version__, "device": str(self.device),
                "precision": self.precision.value}
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info


def from_bundle(bundle: Bundle, *, model: nn.Module | None, precision: Precision | str = Precision.FP32,
                device: str = "cpu", graph: str | None = None) -> TorchBackend:
    """``model`` (built by the caller, weights loaded, grid set to the manifest's image size)
    described by the bundle's ``graph``."""
    if model is None:
        raise BackendError("the torch backend runs the PyTorch model itself: build it (the CLI does, from "
                           "the manifest's model name and checkpoint) and pass model=...")
    g = bundle.manifest.graph(graph)
    return TorchBackend(model, inputs=g.inputs, outputs=g.outputs,
                        dim_ranges={CAMERA_AXIS: (1, bundle.manifest.max_cameras)}, device=device,
                        precision=precision)
