"""What the exporter exports: a graph description independent of how torch traces it.

A ``GraphSpec`` pairs an export wrapper module (positional tensors in, a tuple out, in the order
of ``inputs``/``outputs``) with the manifest's description of its tensors and the inputs used to
trace it and to prove parity. Export-only tricks (baking the input size, tuple outputs, SAM's
prompt handling) live in the wrapper so model code stays what it is for training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from vitdeploy.bundle.manifest import TensorSpec


@dataclass
class ParityCase:
    """One named set of inputs on which PyTorch and ONNX Runtime must agree."""

    name: str
    feeds: dict[str, np.ndarray]


@dataclass
class GraphSpec:
    name: str  # "model", or "image_encoder" / "prompt_decoder" for SAM
    file: str  # file name inside the bundle, e.g. "model.onnx"
    module: nn.Module  # forward(*inputs in order) -> tuple of outputs in order
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    #: dynamic dim name -> size used for tracing. Use >= 2 for every dynamic axis: torch.export
    #: specialises an axis of size 1 to a constant even when it is declared dynamic.
    trace_dims: dict[str, int]
    #: dynamic dim name -> (min, max) allowed sizes, e.g. {"cameras": (1, 8)}
    dim_ranges: dict[str, tuple[int, int]]
    #: builds inputs for given dynamic dims; feeds are float32/int64 arrays keyed by input name
    make_inputs: Callable[[dict[str, int], np.random.Generator], dict[str, np.ndarray]]
    #: extra named parity cases beyond the random ones (a real photo, SAM prompts ...)
    parity_cases: list[ParityCase] = field(default_factory=list)
