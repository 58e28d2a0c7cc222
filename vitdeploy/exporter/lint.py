"""ONNX lint: patterns that TensorRT rejects, or builds into slow or fragile engines.

Each finding carries a one-line hint. ``error`` means TensorRT's ONNX parser will not take the
graph; ``warning`` means it builds, but slower, with a precision risk, or only for some shapes.
"""

from __future__ import annotations

from collections import defaultdict

import onnx

from vitdeploy.bundle.manifest import LintFinding

#: Standard ONNX ops that TensorRT 10.x's ONNX parser has no importer for (onnx-tensorrt's
#: operator support matrix). Ops from non-standard domains are reported separately.
TENSORRT_UNSUPPORTED = frozenset({
    "BitShift", "Compress", "ConcatFromSequence", "ConvInteger", "Det", "DynamicQuantizeLinear",
    "MatMulInteger", "MaxRoiPool", "MaxUnpool", "Multinomial", "NegativeLogLikelihoodLoss",
    "QLinearConv", "QLinearMatMul", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase",
    "SequenceInsert", "SequenceLength", "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringNormalizer",
    "TfIdfVectorizer", "Unique", "Optional", "OptionalGetElement", "OptionalHasElement",
})

#: Inputs that TensorRT treats as shape tensors: a graph input feeding one becomes a shape-tensor
#: input, which needs its own profile values and breaks most builds.
_SHAPE_INPUTS = {"Reshape": (1,), "Expand": (1,), "ConstantOfShape": (0,), "Tile": (1,), "Range": (0, 1, 2),
                 "Resize": (3,), "Slice": (1, 2, 3, 4), "TopK": (1,), "OneHot": (1,), "Pad": (1,)}

_DATA_DEPENDENT = {
    "NonZero": "output size depends on the data: TensorRT must synchronise and cannot pre-plan memory; "
               "replace it with masking arithmetic (torch.where) in the export wrapper",
    "If": "data-dependent branch: both branches are built and the engine cannot fuse across it; "
          "replace control flow with arithmetic in the export wrapper",
    "Loop": "a loop in the graph runs step by step on the GPU; unroll it or move it out of the model",
    "Scan": "a scan runs step by step on the GPU; unroll it or move it out of the model",
}

_SHAPE_OPS = {"Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Constant",
              "ConstantOfShape", "Range", "Reshape", "Expand", "Mul", "Add", "Sub", "Div", "Equal", "Where",
              "ReduceProd", "Max", "Min", "Tile"}


def lint_model(model: onnx.ModelProto) -> list[LintFinding]:
    graph = model.graph
    findings: list[LintFinding] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    producers: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers[name].append((node, i))
        for name in node.output:
            producers[name] = node

    graph_outputs = {v.name for v in graph.output}
    findings += _decomposed_layernorm(graph, consumers, opset)
    for node in graph.node:
        label = node.name or node.op_type
        if node.domain not in ("", "ai.onnx"):
            findings.append(LintFinding(
                "custom-op", "error", f"{label}: op {node.domain}::{node.op_type} is not a standard ONNX op",
                "TensorRT needs a plugin for it; export without runtime-specific fusions (no onnxruntime optimizer)",
                label))
        elif node.op_type in TENSORRT_UNSUPPORTED:
            findings.append(LintFinding(
                "unsupported-op", "error", f"{label}: {node.op_type} has no TensorRT ONNX importer",
                "rewrite that part of the model with supported ops, or keep it outside the graph", label))
        elif node.op_type in _DATA_DEPENDENT:
            findings.append(LintFinding("data-dependent-op", "warning", f"{label}: {node.op_type} in the graph",
                                        _DATA_DEPENDENT[node.op_type], label))
        elif (node.op_type == "Cast" and _attr(node, "to") == onnx.TensorProto.INT64
              and not _only_feeds_shapes(node.output[0], consumers, graph_outputs)):
            findings.append(LintFinding(
                "int64-data", "warning", f"{label}: casts data to INT64",
                "TensorRT computes INT64 slowly or casts it down to INT32; keep data tensors float or int32",
                label))

    for value in graph.input:
        elem = value.type.tensor_type.elem_type
        if elem == onnx.TensorProto.INT64:
            findings.append(LintFinding(
                "int64-input", "warning", f"input {value.name!r} is INT64",
                "feed float32 or int32 (TensorRT casts INT64 down, which can clamp)", value.name))
        for node, idx in consumers.get(value.name, []):
            if idx in _SHAPE_INPUTS.get(node.op_type, ()):
                findings.append(LintFinding(
                    "shape-tensor-input", "error",
                    f"input {value.name!r} feeds the shape argument of {node.op_type} ({node.name})",
                    "TensorRT turns it into a shape tensor that needs its own profile values and usually fails to "
                    "build; compute the shape inside the graph or return a fixed-size output and finish on the host",
                    value.name))
    for value in graph.output:
        if value.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            findings.append(LintFinding(
                "int64-output", "warning", f"output {value.name!r} is INT64",
                "return float32 or int32; TensorRT casts INT64 down", value.name))
    return findings


def _attr(node: onnx.NodeProto, name: str):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None


def _only_feeds_shapes(name: str, consumers: dict, graph_outputs: set[str], depth: int = 0) -> bool:
    """True if ``name`` only flows into shape arguments (index math for Reshape/Expand/...)."""
    if depth > 6 or name in graph_outputs:
        return False
    for node, idx in consumers.get(name, []):
        if idx in _SHAPE_INPUTS.get(node.op_type, ()):
            continue
        if node.op_type in _SHAPE_OPS and all(
                _only_feeds_shapes(o, consumers, graph_outputs, depth + 1) for o in node.output):
            continue
        return False
    return True


def _decomposed_layernorm(graph: onnx.GraphProto, consumers: dict, opset: int) -> list[LintFinding]:
    """ReduceMean -> Sub -> Pow -> ReduceMean: a LayerNorm spelled out in primitive ops."""
    findings = []
    for node in graph.node:
        if node.op_type != "Pow":
            continue
        if any(c.op_type == "ReduceMean" for c, _ in consumers.get(node.output[0], [])):
            label = node.name or "Pow"
            hint = ("export with opset >= 17 so torch emits one LayerNormalization op, which TensorRT fuses and keeps "
                    "in FP32" if opset < 17 else
                    "write the norm as torch.nn.LayerNorm / F.layer_norm so it exports as one LayerNormalization op")
            findings.append(LintFinding(
                "decomposed-layernorm", "warning",
                f"{label}: LayerNorm decomposed into ReduceMean/Pow/Sqrt (FP16 overflow risk, no fusion)", hint, label))
    return findings
