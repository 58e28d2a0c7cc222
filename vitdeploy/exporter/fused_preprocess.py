"""Preprocessing inside the graph: raw uint8 camera frames in, the model's input out.

The module itself (``FusedPreprocess``: cast, channel order, NHWC->NCHW, resize, padding and
normalisation) lives in ``runtime.fused_preprocess``, so that the torch backend runs the very module
exported here; this file puts it in front of the model for export and finds its nodes in the graph.
"""

from __future__ import annotations

import onnx
import torch
from torch import nn

from vitdeploy.runtime.fused_preprocess import FusedPreprocess, fused_geometry

__all__ = ["FusedPreprocess", "WithFusedPreprocess", "fused_geometry", "preprocessing_nodes"]


class WithFusedPreprocess(nn.Module):
    def __init__(self, preprocess: FusedPreprocess, model: nn.Module):
        super().__init__()
        self.preprocess = preprocess
        self.model = model

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model(self.preprocess(frames))


def preprocessing_nodes(model: onnx.ModelProto, *, input_name: str = "frames") -> list[str]:
    """Names of the nodes between the raw-frame input and the model's first Conv (patch embedding).

    Calibration keeps these in FP32: they are cheap, and quantizing pixel arithmetic buys nothing.
    Raw protobuf on purpose: a read-only walk over one consumer map needs no graph library (the
    graph the exporter just wrote is a ``ModelProto`` already; converting it would be the longer path).
    """
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found: list[str] = []
    seen: set[int] = set()
    frontier = [input_name]
    while frontier:
        tensor = frontier.pop()
        for node in consumers.get(tensor, []):
            # Conv is the patch embedding (the model proper); Shape/Size only read the batch size.
            if node.op_type in ("Conv", "Shape", "Size") or id(node) in seen:
                continue
            seen.add(id(node))
            found.append(node.name)
            frontier.extend(node.output)
    return found
