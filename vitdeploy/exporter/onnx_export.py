"""torch -> ONNX for one ``GraphSpec``: dynamo export with named dynamic axes, one file."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch.export import Dim

from vitdeploy.errors import ExportError
from vitdeploy.exporter.graphs import GraphSpec

#: ONNX opsets we export: 17 is the first with LayerNormalization (TensorRT keeps it fused and
#: in FP32); 18 is native to torch's exporter; newer go through the version converter.
SUPPORTED_OPSETS = range(17, 22)
_TWO_GB = 2 * 1024**3


@contextlib.contextmanager
def _quiet_torch_exporter():
    """torch.onnx prints progress and torchvision warnings we do not want in the CLI's output."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def trace_inputs(spec: GraphSpec, *, seed: int = 0) -> tuple[torch.Tensor, ...]:
    feeds = spec.make_inputs(dict(spec.trace_dims), np.random.default_rng(seed))
    return tuple(torch.from_numpy(feeds[t.name]) for t in spec.inputs)


def export_graph(spec: GraphSpec, path: str | Path, *, opset: int = 18) -> onnx.ModelProto:
    """Export ``spec.module`` to ``path`` (written as given; the caller renames it into place)."""
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"opset {opset} is not supported; use {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1} "
                          "(17+ keeps LayerNorm one op)")
    # torch.export wants min < max; a 1..1 camera range still exports as a dynamic axis (up to 2).
    dims = {name: Dim(name, min=lo, max=max(hi, lo + 1)) for name, (lo, hi) in spec.dim_ranges.items()}
    args = trace_inputs(spec)
    arg_names = list(_forward_arg_names(spec.module))
    dynamic_shapes = {
        arg: {axis: dims[d] for axis, d in tensor.dynamic_axes.items()} or None
        for arg, tensor in zip(arg_names, spec.inputs, strict=True)
    }
    module = spec.module.eval()
    try:
        with torch.no_grad(), _quiet_torch_exporter():
            torch.onnx.export(
                module, args, str(path), dynamo=True, opset_version=opset, external_data=False,
                input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
                dynamic_shapes=dynamic_shapes, verbose=False,
            )
    except Exception as exc:  # the exporter raises a zoo of types; the message is what matters
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"torch.onnx.export of graph {spec.name!r} failed: {first}") from exc
    if Path(path).stat().st_size >= _TWO_GB:
        raise ExportError(f"graph {spec.name!r} is over 2 GB; ONNX protobufs cannot hold it in one file")
    model = onnx.load(str(path))
    _check_dynamic_axes(model, spec)
    return model


def _forward_arg_names(module: torch.nn.Module) -> list[str]:
    import inspect

    return [p for p in inspect.signature(module.forward).parameters if p != "self"]


def _check_dynamic_axes(model: onnx.ModelProto, spec: GraphSpec) -> None:
    """torch.export can silently specialise a dynamic axis; refuse a graph where that happened."""
    declared = {t.name: t for t in [*spec.inputs, *spec.outputs]}
    for value in [*model.graph.input, *model.graph.output]:
        want = declared.get(value.name)
        if want is None:
            continue
        dims = value.type.tensor_type.shape.dim
        for axis, name in want.dynamic_axes.items():
            if axis < len(dims) and not dims[axis].dim_param:
                raise ExportError(
                    f"axis {axis} ({name}) of {value.name!r} was fixed to {dims[axis].dim_value} during export; "
                    "it must stay dynamic (trace with size >= 2 on that axis)"
                )
