"""The changes ``vitdeploy import`` makes to its copy of a foreign ONNX graph, each checked.

The image input is found and its size fixed, the batch axis named ``cameras``, the outputs renamed
to the head's names (an Identity node per rename, so the graph's own tensor names stay) and the
outputs the head has no use for dropped, with the nodes that only fed them. Every function works
on the ``onnx.ModelProto`` in place and returns notes for the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from vitdeploy.bundle.manifest import CAMERA_AXIS
from vitdeploy.errors import ExportError


@dataclass(frozen=True)
class ImageInput:
    """The graph's image input: ``name``, ``size`` (H, W) pixels, and its batch axis as found:
    ``fixed_batch`` (a fixed 1) or ``batch_param`` (the name of a dynamic one)."""

    name: str
    size: tuple[int, int]
    fixed_batch: bool
    batch_param: str = ""


def reexport_hint(input_name: str, output_names: Sequence[str]) -> str:
    axes = ", ".join(f"'{n}': {{0: 'cameras'}}" for n in [input_name, *output_names])
    return (f"re-export it with a dynamic batch axis, e.g. torch.onnx.export(model, images, 'model.onnx', "
            f"input_names=['{input_name}'], output_names={list(output_names)}, dynamic_axes={{{axes}}})")


def check_graph(model: onnx.ModelProto, *, source: Path) -> onnx.ModelProto:
    """``onnx.checker`` and shape inference; -> the model with inferred shapes."""
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{source} fails onnx.checker: {first}") from exc
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # InferenceError and friends
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"shape inference fails on {source}: {first}") from exc


def _dims(value: onnx.ValueInfoProto) -> list[onnx.TensorShapeProto.Dimension]:
    return list(value.type.tensor_type.shape.dim)


def _show(dims: Sequence[onnx.TensorShapeProto.Dimension]) -> str:
    return "[" + ", ".join(d.dim_param or str(d.dim_value) if (d.dim_param or d.HasField("dim_value")) else "?"
                           for d in dims) + "]"


def image_input(model: onnx.ModelProto, *, image_size: tuple[int, int] | None, source: Path) -> ImageInput:
    """The one float32 (batch, 3, H, W) input; a dynamic H or W is fixed to ``image_size`` here."""
    graph = model.graph
    weights = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in weights]
    if len(inputs) != 1:
        raise ExportError(f"{source} has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); vitdeploy imports "
                          "graphs whose one input is the camera images")
    value = inputs[0]
    dims = _dims(value)
    if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4 or dims[1].dim_value != 3:
        got = f"{onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)} {_show(dims)}"
        raise ExportError(f"input {value.name!r} of {source} is {got}; vitdeploy feeds float32 images (batch, 3, H, W)"
                          " (NCHW, normalised)")
    size = []
    for axis, dim in zip(("height", "width"), dims[2:], strict=True):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            size.append(int(dim.dim_value))
        elif image_size is None:
            raise ExportError(f"the {axis} of input {value.name!r} of {source} is dynamic; give --image-size HxW")
        else:
            dim.dim_value = int(image_size[len(size)])
            size.append(dim.dim_value)
    if image_size is not None and tuple(image_size) != tuple(size):
        raise ExportError(f"{source} takes {size[0]}x{size[1]} images; drop --image-size or give {size[0]}x{size[1]}")
    batch = dims[0]
    if batch.dim_param:
        return ImageInput(value.name, (size[0], size[1]), fixed_batch=False, batch_param=batch.dim_param)
    if batch.dim_value == 1:
        return ImageInput(value.name, (size[0], size[1]), fixed_batch=True)
    outputs = [o.name for o in graph.output]
    raise ExportError(f"input {value.name!r} of {source} has a fixed batch of {batch.dim_value}; vitdeploy's camera axis "
                      f"is the batch axis: {reexport_hint(value.name, outputs)}")


def map_outputs(model: onnx.ModelProto, names: Sequence[str], mapping: dict[str, str], *, source: Path) -> list[str]:
    """Make the graph's outputs exactly ``names`` (the head's, in order): graph output ``mapping[name]``
    (default ``name``) is renamed to ``name``; outputs not mapped are dropped."""
    graph = model.graph
    unknown = [k for k in mapping if k not in names]
    if unknown:
        raise ExportError(f"--outputs maps {', '.join(unknown)}, which the head does not have; its outputs are "
                          f"{', '.join(names)}")
    by_name = {o.name: o for o in graph.output}
    tensors = {t for n in graph.node for t in n.output} | {v.name for v in graph.input} | \
        {i.name for i in graph.initializer}
    kept, notes = [], []
    for name in names:
        src = mapping.get(name, name)
        if src not in by_name:
            raise ExportError(f"{source} has no output {src!r} for the head's {name!r} (its outputs: "
                              f"{', '.join(by_name)}); map them with --outputs {name}=<graph output>,...")
        value = onnx.ValueInfoProto()
        value.CopyFrom(by_name[src])
        if src != name:
            if name in tensors:
                raise ExportError(f"cannot rename output {src!r} to {name!r}: {source} already has a tensor {name!r}")
            graph.node.append(onnx.helper.make_node("Identity", [src], [name], name=f"vitdeploy_output_{name}"))
            value.name = name
            notes.append(f"output {src} renamed {name}")
        kept.append(value)
    used = {mapping.get(n, n) for n in names}
    dropped = [o.name for o in graph.output if o.name not in used]
    if dropped:
        notes.append(f"outputs the head does not use dropped: {', '.join(dropped)}")
    del graph.output[:]
    graph.output.extend(kept)
    return notes


def mark_camera_axis(model: onnx.ModelProto, image: ImageInput) -> list[str]:
    """Name the batch axis of the input and of every output ``cameras`` (ONNX Runtime then checks
    that the outputs follow it); shapes inferred for the old batch are cleared."""
    graph = model.graph
    next(v for v in graph.input if v.name == image.name).type.tensor_type.shape.dim[0].dim_param = CAMERA_AXIS
    for value in graph.output:
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].dim_param = CAMERA_AXIS
    del graph.value_info[:]
    return ["its fixed batch of 1 was made the dynamic camera axis"] if image.fixed_batch else []


def prune(model: onnx.ModelProto) -> list[str]:
    """Drop the nodes and weights no output needs (they fed dropped outputs). A graph with subgraphs
    (If, Loop: they read outer tensors without naming them as inputs) is left whole."""
    graph = model.graph
    subgraph = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    if any(a.type in subgraph for n in graph.node for a in n.attribute):
        return []
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):  # ONNX nodes are in topological order
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    removed = len(graph.node) - len(kept)
    if not removed:
        return []
    del graph.node[:]
    graph.node.extend(reversed(kept))
    weights = [w for w in graph.initializer if w.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(weights)
    inputs = [v for v in graph.input if v.name in needed]
    del graph.input[:]
    graph.input.extend(inputs)
    return [f"{removed} nodes that only fed dropped outputs removed"]
