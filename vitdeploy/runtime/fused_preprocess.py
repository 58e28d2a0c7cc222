"""Fused preprocessing as a torch module: raw uint8 camera frames in, the model's input out.

One description (the manifest's ``Preprocessing``), two executions: ``runtime.preprocess`` on the
CPU with OpenCV, and this module — exported in front of the model by the exporter
(``exporter.fused_preprocess``) so TensorRT or onnxruntime run it, and run by the torch backend on
the GPU for a fused bundle. It lives in the runtime so that the torch backend, below the exporter
in the import order, runs the very module the graph was exported from.

Resize is bilinear with half-pixel centres and no antialiasing: ONNX ``Resize`` mode ``linear``,
``half_pixel`` coordinates, which TensorRT's IResizeLayer implements (LINEAR, HALF_PIXEL); it is
also what OpenCV's INTER_LINEAR computes, so the two paths differ only by OpenCV rounding the
resized image to uint8 (at most half a grey level before normalisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitdeploy.bundle.manifest import Preprocessing
from vitdeploy.errors import ExportError
from vitdeploy.runtime.preprocess import geometry


def fused_geometry(spec: Preprocessing) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """(resized (h, w), padding (left, right, top, bottom)) for the source size, in pixels: the
    CPU path's geometry (``runtime.preprocess.geometry``), so boxes map back the same way."""
    if spec.source_size is None:
        raise ExportError("fused preprocessing needs the source frame size (--source-size HxW)")
    g = geometry(tuple(spec.source_size), spec)
    (nh, nw), (th, tw) = g.resized, spec.image_size
    return (nh, nw), (g.left, tw - nw - g.left, g.top, th - nh - g.top)


class FusedPreprocess(nn.Module):
    """frames (N, Hs, Ws, 3) uint8 in ``source_channel_order`` -> (N, 3, H, W) float32, normalised."""

    def __init__(self, spec: Preprocessing):
        super().__init__()
        if spec.interpolation != "linear":
            raise ExportError(f"fused preprocessing resizes bilinearly; the manifest asks for {spec.interpolation!r}")
        self.resized, self.padding = fused_geometry(spec)
        self.source_size = tuple(spec.source_size)
        self.pad_value = float(spec.pad_value)
        src, dst = spec.source_channel_order.upper(), spec.channel_order.upper()
        if {src, dst} - {"RGB", "BGR"}:
            raise ExportError(f"channel orders must be RGB or BGR, got source {src} and model {dst}")
        self.swap = src != dst
        mean = torch.tensor(spec.mean, dtype=torch.float32).reshape(1, 3, 1, 1) * 255.0
        inv_std = 1.0 / (torch.tensor(spec.std, dtype=torch.float32).reshape(1, 3, 1, 1) * 255.0)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("inv_std", inv_std, persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).to(torch.float32)
        if self.swap:
            x = torch.flip(x, dims=[1])
        if tuple(self.resized) != self.source_size:
            x = F.interpolate(x, size=self.resized, mode="bilinear", align_corners=False, antialias=False)
        if any(self.padding):
            x = F.pad(x, self.padding, mode="constant", value=self.pad_value)
        return (x - self.mean) * self.inv_std
