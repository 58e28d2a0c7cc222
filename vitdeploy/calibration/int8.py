"""The INT8 recipe for ViTs: explicit Q/DQ on the GEMM inputs, everything else in high precision.

DESIGN.md decision 2. ModelOpt places and calibrates the Q/DQ pairs (per-channel symmetric INT8
weights, per-tensor symmetric INT8 activations); vitdeploy decides *where*:

* quantized: every GEMM — patch-embedding Conv, QKV / Q / K / V, output projections, MLP, decoder
  linears, pixel-decoder convolutions;
* quantized only when the attention spans at most ``attention_tokens`` keys (default 64): the two
  attention matmuls (q @ k^T and softmax @ v). softmax @ v reads the probabilities as per-tensor
  INT8 with a step of about 1/127; attention spread over N keys has weights near 1/N, which keep
  two or more steps of resolution only up to N ~ 64 and round to zero beyond ~254. Measured on
  demo-detr (ViT-Tiny, partly trained) with both matmuls quantized vs neither, INT8-vs-FP32 mAP:
  32 keys 0.995 vs 0.997, 64 keys 0.982 vs 0.996, 112 keys 0.84 vs 0.998, 252 keys 0.57 vs 0.998;
  q @ k^T alone cost nothing even at 252 keys. Both or neither, so TensorRT can fuse the
  attention in one precision;
* high precision: LayerNorm, Softmax, GELU, residual adds (they are never GEMMs), the output
  layers (box MLP's last layer, class embedding, mask products), other activation products, the
  layers the head kind keeps (``Head.high_precision_layers``: a rig-level 3D head's ray-encoding
  MLP and box regression), and whatever ``--exclude`` names.

A rig-level graph (one frame set per run, ``calibration.rig_data``) has attention whose keys are
the tokens of every camera: its Perceiver read has latents x (cameras x patches) scores, 256 x 2688
for vit-tiny-rig3d at 6 x 256x448 (8400 keys at 448x800). The token count is taken at the bundle's
camera count (the graph's ``cameras`` axis is symbolic), so that attention stays in high precision
(FP16, its softmax FP32), while its Q/K/V projections — the GEMMs over all cameras' tokens — are
quantized like every other GEMM; the latent self-attention and the query decoder quantize their
attention only where their key count (latents, queries) is within ``attention_tokens``.

ModelOpt does not recognise vitdeploy's explicit attention as MHA and, left alone, quantizes
both attention matmuls and the residual adds; so vitdeploy restricts it to the planned nodes, and
afterwards gives every consumer that is not a planned layer (a residual Add or a LayerNorm sharing
the quantized tensor) the unquantized tensor instead. The placement is then read back from the
graph, not assumed.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from vitdeploy.calibration.layers import GraphIndex, Layer, LayerKind, restore_input_casts
from vitdeploy.calibration.modelopt_runner import CalibrationError, run_modelopt

if TYPE_CHECKING:
    from onnxscript import ir

DEFAULT_ATTENTION_TOKENS = 64
QUANTIZED_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")
#: Ops kept in FP32 when the rest of the INT8 graph's high precision is FP16: they overflow or
#: lose accuracy in FP16 (normalisation statistics, exponentials, large sums).
FP32_OP_TYPES = ("LayerNormalization", "GroupNormalization", "InstanceNormalization", "Softmax", "LogSoftmax",
                 "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "Pow", "Sqrt")


class CalibrationMethod(str, enum.Enum):
    ENTROPY = "entropy"  # KL-divergence optimal clipping; the better default for ViT activations
    MAX = "max"  # absolute maximum; faster, sensitive to outliers


class HighPrecision(str, enum.Enum):
    """What the non-quantized part of an INT8 graph computes in."""

    FP16 = "fp16"  # what TensorRT should run: half the memory traffic
    FP32 = "fp32"  # faster on a CPU (onnxruntime has few FP16 kernels)


@dataclass(frozen=True)
class Int8Recipe:
    method: CalibrationMethod = CalibrationMethod.ENTROPY
    high_precision: HighPrecision = HighPrecision.FP16
    attention_tokens: int = DEFAULT_ATTENTION_TOKENS
    exclude: tuple[str, ...] = ()  # layer paths, groups, node names or globs kept in high precision

    def __post_init__(self) -> None:
        # accept plain strings from library callers ("max", "fp32") and lists of patterns
        for name, enum_type in (("method", CalibrationMethod), ("high_precision", HighPrecision)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum_type(value))
            except ValueError:
                choices = ", ".join(e.value for e in enum_type)
                raise CalibrationError(f"unknown {name.replace('_', '-')} {value!r}; choose one of: {choices}") from None
        object.__setattr__(self, "exclude", tuple(self.exclude))

    def summary(self) -> dict:
        return {"method": self.method.value, "high_precision": self.high_precision.value,
                "attention_tokens": self.attention_tokens, "exclude": list(self.exclude)}


@dataclass
class Placement:
    """Which layers carry Q/DQ. ``quantized`` and ``kept`` hold node names; ``kept`` says why."""

    layers: list[Layer]
    quantized: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)

    def layer(self, node: str) -> Layer:
        return next(layer for layer in self.layers if layer.node == node)

    def quantized_layers(self) -> list[Layer]:
        wanted = set(self.quantized)
        return [layer for layer in self.layers if layer.node in wanted]

    def summary(self) -> dict:
        q = self.quantized_layers()
        return {
            "quantized_layers": len(q),
            "quantized_attention_matmuls": sum(1 for layer in q if layer.is_attention),
            "kept_layers": {self.layer(n).path: why for n, why in self.kept.items()},
        }


def matches(layer: Layer, pattern: str) -> bool:
    """``pattern`` names ``layer``: its path, its group, its node name, a glob over any of them, or a
    module above it (``head`` matches ``head.box_embed.out``)."""
    names = (layer.path, layer.group, layer.node)
    return any(fnmatch.fnmatchcase(n, pattern) for n in names) or layer.path.startswith(pattern + ".")


def plan_int8(layers: list[Layer], recipe: Int8Recipe, *, keep: dict[str, str] | None = None) -> Placement:
    """Decide, per layer, quantized or kept (with the reason). Raises when an ``exclude`` pattern
    names no layer: a typo would otherwise silently quantize what the user meant to keep.
    ``keep``: patterns (as ``exclude`` takes them) the head kind keeps in high precision, with why
    (``Head.high_precision_layers``)."""
    if recipe.attention_tokens < 0:
        raise CalibrationError(f"--attention-tokens {recipe.attention_tokens} is negative; give 0 (never quantize "
                               f"attention matmuls) or a token count such as {DEFAULT_ATTENTION_TOKENS}")
    for pattern in recipe.exclude:
        if not any(matches(layer, pattern) for layer in layers):
            example = next((layer.group for layer in layers if layer.kind is LayerKind.GEMM), "encoder.blocks.0.mlp")
            raise CalibrationError(f"--exclude {pattern!r} matches no layer of this graph; layers are named like "
                                   f"{example!r} (module paths; globs allowed; --sensitivity lists them)")
    placement = Placement(layers=layers)
    for layer in layers:
        reason = next((f"{pattern}: {why}" for pattern, why in (keep or {}).items() if matches(layer, pattern)), "")
        reason = _keep_reason(layer, recipe) or reason
        if reason:
            placement.kept[layer.node] = reason
        else:
            placement.quantized.append(layer.node)
    return placement


def _keep_reason(layer: Layer, recipe: Int8Recipe) -> str:
    pattern = next((p for p in recipe.exclude if matches(layer, p)), None)
    if pattern is not None:
        return f"--exclude {pattern}"
    if layer.output:
        return "output layer: writes a graph output directly"
    if layer.kind is LayerKind.PRODUCT:
        return "product of two activations outside attention"
    if layer.is_attention:
        if layer.tokens is None:
            return "attention with an unknown token count"
        if layer.tokens > recipe.attention_tokens:
            return f"attention over {layer.tokens} tokens > --attention-tokens {recipe.attention_tokens}"
    return ""


def _exact(names: Iterable[str]) -> list[str]:
    return [f"^{re.escape(n)}$" for n in names]


def quantize_int8(fp32_path: Path, out_path: Path, *, calibration: dict[str, np.ndarray], placement: Placement,
                  recipe: Int8Recipe, log_path: Path, set_cameras: int | None = None) -> Placement:
    """Write the Q/DQ graph of ``fp32_path`` to ``out_path``; return the placement read back from it
    (planned layers ModelOpt declined to quantize, e.g. GEMMs too small to gain, move to ``kept``).
    ``set_cameras``: calibrate one frame set of this many cameras per step (a rig-level graph)."""
    gemm_nodes = [layer.node for layer in placement.layers]
    not_planned = [n for n in gemm_nodes if n not in set(placement.quantized)]
    options = {
        "calibration_method": recipe.method.value,
        "high_precision_dtype": recipe.high_precision.value,
        "op_types_to_quantize": list(QUANTIZED_OP_TYPES),
        # attention matmuls too: vitdeploy applies the token-count rule itself
        "nodes_to_exclude": _exact(not_planned),
    }
    if recipe.high_precision is HighPrecision.FP16:
        options["op_types_to_exclude_fp16"] = list(FP32_OP_TYPES)
    run_modelopt("int8", onnx_path=fp32_path, output_path=out_path, calibration=calibration, options=options,
                 log_path=log_path, set_cameras=set_cameras)
    model = onnx.load(str(out_path))
    model = isolate_qdq(model, set(placement.quantized))
    restore_input_casts(model)
    onnx.save(model, str(out_path))
    actual = quantized_nodes(model)
    unexpected = actual - set(placement.quantized)
    if unexpected:
        raise CalibrationError(f"ModelOpt quantized nodes outside the recipe: {sorted(unexpected)[:5]}; "
                               f"see {log_path}")
    result = Placement(layers=placement.layers, kept=dict(placement.kept))
    for node in placement.quantized:
        if node in actual:
            result.quantized.append(node)
        else:
            result.kept[node] = "left in high precision by ModelOpt (a GEMV or a dimension below 16: no INT8 Tensor Core gain)"
    return result


# ---- reading and editing Q/DQ placement ------------------------------------------------------------------
def _dq_source(index: GraphIndex, tensor: str) -> str | None:
    """For a DequantizeLinear output fed by a QuantizeLinear, the tensor before quantization."""
    dq = index.producer.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = index.producer.get(dq.input[0])
    if q is None or q.op_type != "QuantizeLinear":
        return None
    return q.input[0]


def quantized_nodes(model: onnx.ModelProto) -> set[str]:
    """Names of the GEMM/MatMul nodes that read at least one activation through Q/DQ (read-only:
    ``layers.GraphIndex`` over the protobuf, as the layers were found)."""
    index = GraphIndex(model)
    out = set()
    for node in index.nodes:
        if node.op_type not in QUANTIZED_OP_TYPES:
            continue
        for tensor in node.input:
            src = _dq_source(index, tensor)
            if src is not None and not index.is_constant(src):
                out.add(node.name)
    return out


def isolate_qdq(model: onnx.ModelProto, quantized: set[str]) -> onnx.ModelProto:
    """``model`` with every consumer of a Q/DQ pair that is not in ``quantized`` reading the
    unquantized tensor, and the Q/DQ nodes left without consumers dropped."""
    return _read_unquantized(model, lambda node: node.name not in quantized
                             and node.op_type not in ("QuantizeLinear", "DequantizeLinear"))


def without_qdq(model: onnx.ModelProto, nodes: Iterable[str]) -> onnx.ModelProto:
    """A copy of ``model`` in which ``nodes`` read their activations and weights unquantized."""
    drop = set(nodes)
    return _read_unquantized(model, lambda node: node.name in drop)


def _read_unquantized(model: onnx.ModelProto, select: Callable[[ir.Node], bool]) -> onnx.ModelProto:
    """A copy of ``model`` whose ``select``-ed nodes read past their Q/DQ pairs, without the nodes
    and initializers nothing reads any more.

    Rewiring edges is what onnxscript's IR is for: a value knows its producer and its uses, and
    its dead-code pass prunes what the rewiring orphaned (the IR keeps each node's metadata, such
    as the PyTorch name scopes layers are named by; onnx-graphsurgeon's export drops them)."""
    from onnxscript import ir  # 0.7 s to import: only when a graph is edited
    from onnxscript.ir.passes.common import RemoveUnusedNodesPass

    graph_model = ir.from_proto(model)
    for node in graph_model.graph:
        if not select(node):
            continue
        for i, value in enumerate(node.inputs):
            dq = value.producer() if value is not None else None
            q = dq.inputs[0].producer() if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                node.replace_input_with(i, q.inputs[0])
    RemoveUnusedNodesPass()(graph_model)
    return ir.to_proto(graph_model)
