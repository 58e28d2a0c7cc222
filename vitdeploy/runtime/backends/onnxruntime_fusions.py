"""Graph rewrites for ONNX Runtime's CPU provider only, made in memory when a session opens.

The bundle's ONNX stays the portable graph that TensorRT, calibration and parity read: plain
opset-18 MatMul/Softmax/Erf/LayerNormalization, because that is what Q/DQ placement and TensorRT's
own fusions look for (DESIGN.md decision 2). ONNX Runtime's built-in optimiser does not recognise
that graph's transformer blocks (one QKV MatMul split by Gather, GELU spelled with Erf, bias and
residual Adds on 3-D activations), so each Add, Erf and Transpose runs as its own pass over the
activations. These rewrites replace the blocks with ONNX Runtime's own fused CPU kernels
(``com.microsoft`` domain):

- ``attention``: MatMul(x, W_qkv) + bias -> Reshape(B, S, 3, h, d) -> Transpose -> Gather q/k/v ->
  softmax(q * scale @ k^T) @ v -> Transpose -> Reshape(B, S, h*d)  =>  ``Attention(x, W_qkv, bias)``.
- ``bias_gelu``: Add(MatMul, bias) -> x * 0.5 * (1 + erf(x / sqrt 2))  =>  ``BiasGelu`` (exact erf
  GELU, not the tanh approximation); without a bias Add, ``Gelu``.

Every match is checked strictly (constants, attributes, ranks, single consumers); anything else is
left as it is, so an INT8 (Q/DQ) or FP16 graph, or a model with another attention layout, comes out
unchanged. Outputs equal the plain graph's within float rounding (tests/runtime/test_onnxruntime_fusions.py).
Needs the ``onnx`` package (the export extra); the backend says in ``describe()`` when it is missing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The domain of ONNX Runtime's contrib operators.
MS_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class FusionCounts:
    """How many blocks each rewrite replaced."""

    attention: int = 0
    bias_gelu: int = 0

    @property
    def total(self) -> int:
        return sum(vars(self).values())

    def describe(self) -> str:
        """``attention 12, bias_gelu 15`` or ``none``."""
        parts = [f"{name} {n}" for name, n in vars(self).items() if n]
        return ", ".join(parts) or "none"


class _Graph:
    """Producer/consumer index of one ``onnx.GraphProto`` and the edits queued on it: nodes to
    drop, and a new node that takes the place of the last node of the block it replaces (every
    input of a block is computed before its last node, so the order stays topological)."""

    def __init__(self, graph: Any, shapes: dict[str, tuple]):
        from onnx import numpy_helper

        self.graph = graph
        self.shapes = shapes
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for node in graph.node:
            for name in node.input:
                self.consumers[name].append(node)
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.graph_outputs = {o.name for o in graph.output}
        self.dropped: set[int] = set()
        self.placed: dict[int, Any] = {}

    def node(self, name: str, op_type: str) -> Any | None:
        """The node that computes ``name`` if it is an ``op_type`` not yet taken by a rewrite."""
        node = self.producer.get(name)
        if node is None or node.op_type != op_type or node.domain not in ("", "ai.onnx") or id(node) in self.dropped:
            return None
        return node

    def sole_use(self, name: str) -> Any | None:
        """The only node reading ``name``, when no other node and no graph output does."""
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.graph_outputs else None

    def scalar(self, name: str) -> float | None:
        value = self.constants.get(name)
        return float(value) if value is not None and value.size == 1 and value.dtype.kind == "f" else None

    def vector(self, name: str) -> np.ndarray | None:
        value = self.constants.get(name)
        return value if value is not None and value.ndim == 1 and value.dtype == np.float32 else None

    def replace(self, block: list[Any], new_node: Any) -> None:
        self.dropped.update(id(n) for n in block)
        self.placed[id(block[-1])] = new_node

    def commit(self) -> None:
        nodes = []
        for node in self.graph.node:
            if id(node) in self.placed:
                nodes.append(self.placed[id(node)])
            elif id(node) not in self.dropped:
                nodes.append(node)
        del self.graph.node[:]
        self.graph.node.extend(nodes)


def _attribute(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _other(node: Any, name: str) -> str:
    """The input of a two-input ``node`` that is not ``name``."""
    return node.input[1] if node.input[0] == name else node.input[0]


def _bias_add(g: _Graph, name: str) -> tuple[Any, str, str] | None:
    """(Add node, MatMul output, bias name) when ``name`` is Add(MatMul(...), 1-D float constant)."""
    add = g.node(name, "Add")
    if add is None:
        return None
    for data, bias in ((add.input[0], add.input[1]), (add.input[1], add.input[0])):
        if g.vector(bias) is not None and g.node(data, "MatMul") is not None:
            return add, data, bias
    return None


# ---- attention -----------------------------------------------------------------------------------

@dataclass
class _QkvProjection:
    """MatMul(x, W) + bias -> Reshape(B, S, 3, heads, head_size) -> Transpose(3, B, heads, S, d)."""

    nodes: list[Any]
    x: str
    weights: str
    bias: str
    heads: int
    head_size: int


def _qkv_projection(g: _Graph, permuted_name: str) -> _QkvProjection | None:
    permuted = g.node(permuted_name, "Transpose")
    if permuted is None or list(_attribute(permuted, "perm", [])) != [2, 0, 3, 1, 4]:
        return None
    split = g.node(permuted.input[0], "Reshape")
    qkv = _bias_add(g, split.input[0]) if split is not None else None
    if qkv is None:
        return None
    bias_add, projected, bias = qkv
    matmul = g.producer[projected]
    weights, shape = g.constants.get(matmul.input[1]), g.constants.get(split.input[1])
    if weights is None or weights.ndim != 2 or shape is None or shape.shape != (5,) or shape[2] != 3:
        return None
    heads, head_size = int(shape[3]), int(shape[4])
    if weights.shape[1] != 3 * heads * head_size or g.vector(bias).shape != (3 * heads * head_size,):
        return None
    if len(g.shapes.get(matmul.input[0], ())) != 3:  # the Attention kernel takes (B, S, C) only
        return None
    if any(g.sole_use(n.output[0]) is None for n in (matmul, bias_add, split)):
        return None
    return _QkvProjection([matmul, bias_add, split, permuted], matmul.input[0], matmul.input[1], bias, heads, head_size)


def _fuse_attention(g: _Graph, softmax: Any) -> bool:
    """softmax(q * scale @ k^T) @ v with q, k, v gathered from one QKV projection, heads merged
    back to (B, S, heads * head_size)  =>  ``Attention(x, W_qkv, bias)``."""
    from onnx import helper

    scores = g.node(softmax.input[0], "MatMul")
    weighted = g.sole_use(softmax.output[0])
    if _attribute(softmax, "axis", -1) not in (-1, 3) or scores is None or weighted is None \
       or weighted.op_type != "MatMul" or weighted.input[0] != softmax.output[0]:
        return False
    scaled, k_t = g.node(scores.input[0], "Mul"), g.node(scores.input[1], "Transpose")
    if scaled is None or k_t is None or list(_attribute(k_t, "perm", [])) != [0, 1, 3, 2]:
        return False
    q_name = next((i for i in scaled.input if g.scalar(_other(scaled, i)) is not None), None)
    if q_name is None:
        return False
    gathers = [g.node(q_name, "Gather"), g.node(k_t.input[0], "Gather"), g.node(weighted.input[1], "Gather")]
    if any(n is None or _attribute(n, "axis", 0) != 0 for n in gathers):
        return False
    indices = [g.constants.get(n.input[1]) for n in gathers]
    if any(i is None or i.size != 1 or i.dtype.kind != "i" for i in indices) or [int(i) for i in indices] != [0, 1, 2]:
        return False
    source = gathers[0].input[0]
    if any(n.input[0] != source for n in gathers) or len(g.consumers[source]) != 3 or source in g.graph_outputs:
        return False
    qkv = _qkv_projection(g, source)
    heads_first = g.sole_use(weighted.output[0])
    merged = g.sole_use(heads_first.output[0]) if heads_first is not None else None
    if qkv is None or heads_first is None or merged is None or heads_first.op_type != "Transpose" \
       or list(_attribute(heads_first, "perm", [])) != [0, 2, 1, 3] or merged.op_type != "Reshape":
        return False
    out_shape = g.constants.get(merged.input[1])
    if out_shape is None or out_shape.shape != (3,) or out_shape[-1] != qkv.heads * qkv.head_size:
        return False
    if any(g.sole_use(n.output[0]) is None for n in (*gathers, scaled, k_t, scores)):
        return False
    g.replace([*qkv.nodes, *gathers, scaled, k_t, scores, softmax, weighted, heads_first, merged],
              helper.make_node("Attention", [qkv.x, qkv.weights, qkv.bias], [merged.output[0]],
                               name=f"{merged.output[0]}_attention", domain=MS_DOMAIN, num_heads=qkv.heads,
                               scale=g.scalar(_other(scaled, q_name))))
    return True


# ---- GELU ----------------------------------------------------------------------------------------

def _fuse_gelu(g: _Graph, erf: Any) -> bool:
    """x * 0.5 * (1 + erf(x / sqrt 2)), in the two orders exporters write it."""
    from onnx import helper

    scaled = g.node(erf.input[0], "Div") or g.node(erf.input[0], "Mul")
    if scaled is None or g.sole_use(scaled.output[0]) is not erf:
        return False
    x = scaled.input[0] if scaled.op_type == "Div" or g.scalar(scaled.input[0]) is None else scaled.input[1]
    factor = g.scalar(_other(scaled, x))
    expected = math.sqrt(2.0) if scaled.op_type == "Div" else 1 / math.sqrt(2.0)
    if factor is None or not math.isclose(factor, expected, rel_tol=1e-6):
        return False
    one_plus = g.sole_use(erf.output[0])
    if one_plus is None or one_plus.op_type != "Add" or g.scalar(_other(one_plus, erf.output[0])) != 1.0:
        return False
    first = g.sole_use(one_plus.output[0])
    if first is None or first.op_type != "Mul":
        return False
    last = g.sole_use(first.output[0])
    if last is None or last.op_type != "Mul":
        return False
    others = (_other(first, one_plus.output[0]), _other(last, first.output[0]))
    if x not in others or not any(g.scalar(o) == 0.5 for o in others if o != x):
        return False
    takes_x = first if others[0] == x else last
    block = [scaled, erf, one_plus, first, last]
    bias = _bias_add(g, x)
    if bias is not None and sorted(map(id, g.consumers[x])) == sorted(map(id, (scaled, takes_x))):
        add, projected, vector = bias
        g.replace([add, *block], helper.make_node("BiasGelu", [projected, vector], [last.output[0]],
                                                  name=f"{last.output[0]}_bias_gelu", domain=MS_DOMAIN))
    else:
        g.replace(block, helper.make_node("Gelu", [x], [last.output[0]], name=f"{last.output[0]}_gelu", domain=MS_DOMAIN))
    return True


# ---- the pass ------------------------------------------------------------------------------------

def _shapes(model: Any) -> dict[str, tuple]:
    """Every value's shape from ONNX shape inference: a tuple of ints and dim names (None where
    unknown); values whose rank is unknown are absent."""
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                       for d in tensor.shape.dim)
    return shapes


#: Each rewrite: the op its match starts from, and the function that tries one match.
_REWRITES = {"attention": ("Softmax", _fuse_attention), "bias_gelu": ("Erf", _fuse_gelu)}
#: Every rewrite, in the order they run.
ALL_FUSIONS = tuple(_REWRITES)


def fuse_for_onnxruntime(model: Any, *, fusions: tuple[str, ...] = ALL_FUSIONS) -> tuple[Any, FusionCounts]:
    """A copy of ``model`` (an ``onnx.ModelProto``) with its transformer blocks replaced by ONNX
    Runtime's fused CPU kernels (``fusions``: a subset of ``ALL_FUSIONS``), and how many of each
    were replaced. ``model`` itself is not changed; a graph with nothing to fuse comes back equal."""
    import onnx

    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    shapes = _shapes(fused)
    counts = {}
    for field in (f for f in ALL_FUSIONS if f in fusions):
        op_type, rewrite = _REWRITES[field]
        g = _Graph(fused.graph, shapes)
        counts[field] = sum(rewrite(g, node) for node in list(fused.graph.node)
                            if node.op_type == op_type and node.domain in ("", "ai.onnx") and id(node) not in g.dropped)
        g.commit()
    result = FusionCounts(**counts)
    if result != FusionCounts():
        if not any(o.domain == MS_DOMAIN for o in fused.opset_import):
            fused.opset_import.append(onnx.helper.make_opsetid(MS_DOMAIN, 1))
        _drop_unused_initializers(fused.graph)
    return fused, result


def _drop_unused_initializers(graph: Any) -> None:
    """The rewrites leave the constants of the replaced blocks behind (shapes, 0.5, sqrt 2)."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
