"""What quantization can act on: the GEMMs and attention matmuls of an FP32 ONNX graph.

The graph is read, not assumed (DESIGN.md decision 2). A *GEMM* is a Conv, ConvTranspose, Gemm or
a MatMul with a constant weight. A MatMul of two activations is an *attention* matmul when it
feeds a Softmax (the scores, q @ k^T) or is fed by one (the context, softmax @ v); any other is a
*product* (e.g. mask embeddings x pixel embeddings). Attention matmuls carry the token count
their Softmax normalises over (the number of keys). *Output* layers are the GEMMs and products
that write a graph output through nothing but bias adds, activations and reshapes (box MLP's last
layer, class embedding, mask products): their errors land on the outputs undiluted.

Names: the exporter stores each node's PyTorch module path in the ``pkg.torch.onnx.name_scopes``
metadata. A layer is named by that path with the export wrapper's leading ``model.`` removed, so
it matches the model's parameter names (``encoder.blocks.3.attn.qkv``); layers without the
metadata are named by their ONNX node name.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import onnx

GEMM_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Ops a path from an attention matmul to its Softmax may cross (scale, mask, dtype, layout).
_SCORE_PATH_OPS = {"Mul", "Div", "Add", "Sub", "Where", "Cast", "Reshape", "Transpose", "Identity"}
_CONTEXT_PATH_OPS = {"Cast", "Reshape", "Identity", "Dropout"}
# Output tails may cross these with one activation input (or Concat of several: multi-task logits).
_OUTPUT_PATH_MULTI = {"Concat"}


class LayerKind(str, enum.Enum):
    GEMM = "gemm"
    ATTENTION_SCORES = "attention_qk"  # softmax(q @ k^T): the first attention matmul
    ATTENTION_CONTEXT = "attention_pv"  # softmax(...) @ v: the second one
    PRODUCT = "product"  # any other matmul of two activations


@dataclass(frozen=True)
class Layer:
    """One node quantization may act on. ``tokens`` is the key count of an attention matmul."""

    node: str
    op_type: str
    kind: LayerKind
    path: str
    group: str
    tokens: int | None = None
    output: bool = False

    @property
    def is_attention(self) -> bool:
        return self.kind in (LayerKind.ATTENTION_SCORES, LayerKind.ATTENTION_CONTEXT)


class GraphIndex:
    """Producer/consumer maps of a graph, with constants (initializers, Constant nodes) known.

    Raw protobuf on purpose: this only reads the graph, and the layers it finds are handed to
    ModelOpt by ONNX node name; two dicts over ``NodeProto`` are all the analysis needs, where a
    graph library would first convert (and, for onnx-graphsurgeon, lose each node's name scopes).
    """

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        graph = model.graph
        self.nodes = list(graph.node)
        self.producer: dict[str, onnx.NodeProto] = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                if i:
                    self.consumers[i].append(n)
        self.constants = {i.name for i in graph.initializer}
        self.constants.update(o for n in self.nodes if n.op_type == "Constant" for o in n.output)
        self.outputs = [o.name for o in graph.output]

    def is_constant(self, tensor: str) -> bool:
        """An initializer, or computed from initializers only (e.g. a Transpose/Cast of a weight)."""
        seen = 0
        while tensor not in self.constants:
            node = self.producer.get(tensor)
            if node is None or seen > 4 or node.op_type not in ("Transpose", "Cast", "Reshape", "Identity",
                                                                 "DequantizeLinear", "QuantizeLinear"):
                return False
            tensor, seen = node.input[0], seen + 1
        return True

    def activation_inputs(self, node: onnx.NodeProto) -> list[str]:
        return [i for i in node.input if i and not self.is_constant(i)]


def _scopes(node: onnx.NodeProto) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return []
            return [s for s in scopes if isinstance(s, str)]
    return []


def module_path(node: onnx.NodeProto) -> str:
    """The PyTorch module a node came from (see the module docstring), or its node name."""
    scopes = [s for s in _scopes(node) if s]
    # the last scope is the aten op ("linear", "matmul_3"); the one before is the module
    path = scopes[-2] if len(scopes) >= 2 else ""
    if not path:
        return node.name
    return path[len("model."):] if path.startswith("model.") else path


def layer_group(path: str) -> str:
    """The unit sensitivity analysis and ``--exclude`` suggestions work in: the attention or MLP
    block a layer belongs to (``encoder.blocks.3.attn``), the box MLP, the pixel decoder ..."""
    if "." not in path:
        return path
    parts = path.split(".")
    if parts[-1].isdigit() and len(parts) > 2:  # an entry of a ModuleList/Sequential
        return ".".join(parts[:-2])
    return ".".join(parts[:-1])


def _is_gemm(index: GraphIndex, node: onnx.NodeProto) -> bool:
    if node.op_type in ("Conv", "ConvTranspose"):
        return len(node.input) > 1 and index.is_constant(node.input[1])
    if node.op_type == "Gemm":
        return index.is_constant(node.input[1])
    if node.op_type == "MatMul":
        return index.is_constant(node.input[0]) or index.is_constant(node.input[1])
    return False


def _softmax_tokens(shapes: dict[str, list[int | str]], softmax: onnx.NodeProto) -> int | None:
    shape = shapes.get(softmax.input[0])
    if not shape:
        return None
    axis = next((a.i for a in softmax.attribute if a.name == "axis"), -1)
    dim = shape[axis]
    return int(dim) if isinstance(dim, int) and dim > 0 else None


def _shapes(model: onnx.ModelProto, dims: dict[str, int] | None = None) -> dict[str, list[int | str]]:
    """Every tensor's inferred shape; ``dims`` fixes named input axes first (e.g. ``cameras``, so that
    an attention over the keys of all cameras has a token count)."""
    if dims:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        for vi in model.graph.input:
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_param") and d.dim_param in dims:
                    d.dim_value = int(dims[d.dim_param])
    inferred = onnx.shape_inference.infer_shapes(model)
    out = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    return out


def _walk(index: GraphIndex, start: str, ops: set[str], *, up: bool, depth: int) -> Iterable[onnx.NodeProto]:
    """Nodes reachable from tensor ``start`` through ``ops`` (producers if ``up``, else consumers)."""
    frontier, seen = [start], set()
    for _ in range(depth):
        nxt = []
        for tensor in frontier:
            if up:
                nodes = [index.producer[tensor]] if tensor in index.producer else []
            else:
                nodes = index.consumers.get(tensor, [])
            for node in nodes:
                if node.name in seen:
                    continue
                seen.add(node.name)
                yield node
                if node.op_type in ops:
                    nxt.extend(index.activation_inputs(node) if up else node.output)
        frontier = nxt


def find_layers(model: onnx.ModelProto, *, dims: dict[str, int] | None = None) -> list[Layer]:
    """Every GEMM, attention matmul and activation product of ``model``, in graph order. ``dims``:
    sizes of named input axes to count attention tokens at (a rig graph's keys span all cameras:
    its ``cameras`` axis at the bundle's camera count)."""
    index = GraphIndex(model)
    shapes = _shapes(model, dims)
    attention: dict[str, tuple[LayerKind, int | None]] = {}
    for softmax in (n for n in index.nodes if n.op_type == "Softmax"):
        tokens = _softmax_tokens(shapes, softmax)
        for node in _walk(index, softmax.input[0], _SCORE_PATH_OPS, up=True, depth=4):
            if node.op_type == "MatMul" and not _is_gemm(index, node):
                attention.setdefault(node.name, (LayerKind.ATTENTION_SCORES, tokens))
                break
        for node in _walk(index, softmax.output[0], _CONTEXT_PATH_OPS, up=False, depth=3):
            if node.op_type == "MatMul" and not _is_gemm(index, node):
                attention.setdefault(node.name, (LayerKind.ATTENTION_CONTEXT, tokens))
                break

    layers: dict[str, Layer] = {}
    calls: dict[str, int] = defaultdict(int)
    for node in index.nodes:
        if node.op_type not in GEMM_OP_TYPES:
            continue
        if _is_gemm(index, node):
            kind, tokens = LayerKind.GEMM, None
        elif node.op_type == "MatMul":
            kind, tokens = attention.get(node.name, (LayerKind.PRODUCT, None))
        else:
            continue
        module = module_path(node)
        if kind in (LayerKind.ATTENTION_SCORES, LayerKind.ATTENTION_CONTEXT):
            # both matmuls of one attention share its module; name them apart, group them together
            suffix = ".matmul_qk" if kind is LayerKind.ATTENTION_SCORES else ".matmul_pv"
            path, group = (module + suffix, module) if module != node.name else (node.name, node.name)
        else:
            path, group = module, layer_group(module)
        calls[path] += 1
        if calls[path] > 1:  # a module applied more than once (a shared block run per task token)
            path = f"{path}#{calls[path]}"
        layers[node.name] = Layer(node=node.name, op_type=node.op_type, kind=kind, path=path, group=group,
                                  tokens=tokens)
    for name in _output_tail(index, layers)[0]:
        layers[name] = dataclasses.replace(layers[name], output=True)
    return list(layers.values())


def output_tail(model: onnx.ModelProto, layers: list[Layer]) -> set[str]:
    """Names of the nodes from the output layers to the graph outputs, output layers included
    (e.g. box MLP's last MatMul, its bias Add and the Sigmoid)."""
    return _output_tail(GraphIndex(model), {layer.node: layer for layer in layers})[1]


def _output_tail(index: GraphIndex, layers: dict[str, Layer]) -> tuple[set[str], set[str]]:
    """(layers that write a graph output through bias adds, activations and reshapes only; every
    node on those paths)."""
    found: set[str] = set()
    frontier = list(index.outputs)
    seen: set[str] = set()
    for _ in range(16):
        nxt = []
        for tensor in frontier:
            node = index.producer.get(tensor)
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            layer = layers.get(node.name)
            if layer is not None and layer.kind is LayerKind.GEMM:
                found.add(node.name)
                continue
            acts = index.activation_inputs(node)
            if layer is not None and layer.kind is LayerKind.PRODUCT:
                found.add(node.name)
                nxt.extend(acts)
            elif len(acts) == 1 or node.op_type in _OUTPUT_PATH_MULTI:
                nxt.extend(acts)
        frontier = nxt
    return found, seen


_LAYOUT_OPS = {"Transpose", "Reshape", "Slice", "Identity", "Squeeze", "Unsqueeze", "Flatten"}
_INTEGER_TYPES = {onnx.TensorProto.UINT8, onnx.TensorProto.INT8, onnx.TensorProto.UINT16, onnx.TensorProto.INT16}


def restore_input_casts(model: onnx.ModelProto) -> int:
    """Put back the Cast to FP32 after an integer graph input (fused preprocessing's uint8 frames).

    ModelOpt drops the graph's own casts to float and re-derives the ones it needs from types it
    assumes are float, so an exported ``Cast(uint8 -> float)`` vanishes and arithmetic ops end up
    fed uint8 (an invalid graph). This walks the integer tensors from the inputs through layout ops
    and casts them to FP32 where arithmetic first reads them. Returns the number of casts added.

    Raw protobuf on purpose: one pass in graph order that inserts each Cast just before the node
    list position of its first reader is as short as the IR form, edits ModelOpt's output in place
    (both callers save it next) and costs no conversion of the whole model there and back.
    """
    integer = {i.name for i in model.graph.input if i.type.tensor_type.elem_type in _INTEGER_TYPES}
    if not integer:
        return 0
    nodes = list(model.graph.node)
    for node in nodes:  # topological order: propagate integer-ness through layout ops
        if node.op_type in _LAYOUT_OPS and node.input and node.input[0] in integer:
            integer.update(node.output)
    casts: dict[str, str] = {}
    new_nodes: list[onnx.NodeProto] = []
    for node in nodes:
        if node.op_type not in _LAYOUT_OPS | {"Shape", "Size", "Cast"}:
            for idx, name in enumerate(node.input):
                if name in integer:
                    if name not in casts:
                        casts[name] = f"{name}_to_fp32"
                        new_nodes.append(onnx.helper.make_node("Cast", [name], [casts[name]], to=onnx.TensorProto.FLOAT,
                                                               name=f"{name}_cast_to_fp32"))
                    node.input[idx] = casts[name]
        new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return len(casts)

