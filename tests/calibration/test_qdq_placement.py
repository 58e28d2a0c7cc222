"""Where Q/DQ goes in model.int8.onnx, and what stays FP32 in model.fp16.onnx: read from the graph.

In the style of ModelOpt's tests/unit/onnx/test_qdq_rules_int8.py: build (or quantize) a graph,
then assert on the nodes around each Q/DQ pair.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vitdeploy.bundle import Bundle, Precision, sha256_file
from vitdeploy.calibration import CalibrationError, HighPrecision, Int8Recipe, LayerKind, find_layers
from vitdeploy.calibration.fp16 import node_compute_types
from vitdeploy.calibration.int8 import isolate_qdq, plan_int8, quantized_nodes
from vitdeploy.calibration.report import run_graph

GEMMS = {"MatMul", "Conv", "ConvTranspose", "Gemm"}


# ---- helpers ------------------------------------------------------------------------------------------
class G:
    """Lookups over a loaded graph."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in model.graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.nodes = {n.name: n for n in model.graph.node}

    def qdq(self, tensor: str):
        """(Q, DQ) pair producing ``tensor``, or None."""
        dq = self.producer.get(tensor)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        q = self.producer.get(dq.input[0])
        return (q, dq) if q is not None and q.op_type == "QuantizeLinear" else None

    def axis(self, node) -> int | None:
        return next((a.i for a in node.attribute if a.name == "axis"), None)


def fp32_layers(result):
    bundle = Bundle.open(result.bundle.path)
    return find_layers(onnx.load(str(bundle.onnx_path(Precision.FP32))))


def int8_graph(result) -> G:
    return G(onnx.load(str(result.onnx_path)))


# ---- INT8 placement ------------------------------------------------------------------------------------
def test_every_planned_gemm_has_quantized_weights_and_inputs(calibrated):
    result = calibrated("int8")
    g = int8_graph(result)
    gemms = [layer for layer in fp32_layers(result) if layer.kind is LayerKind.GEMM and not layer.output]
    assert len(gemms) >= 20
    for layer in gemms:
        node = g.nodes[layer.node]
        act, weight = node.input[0], node.input[1]
        a = g.qdq(act)
        w = g.qdq(weight)
        assert a is not None, f"{layer.path}: activation input not quantized"
        assert w is not None, f"{layer.path}: weight not quantized"
        # activations: per-tensor symmetric INT8
        a_scale, a_zero = g.inits[a[1].input[1]], g.inits[a[1].input[2]]
        assert a_scale.size == 1 and a_zero.dtype == np.int8 and not a_zero.any()
        # weights: per-channel (output channels) symmetric INT8
        w_scale, w_zero = g.inits[w[1].input[1]], g.inits[w[1].input[2]]
        out_channels = g.inits[w[0].input[0]].shape[0 if node.op_type == "Conv" else 1]
        assert w_scale.shape == (out_channels,), layer.path
        assert w_zero.dtype == np.int8 and not w_zero.any()
        assert g.axis(w[1]) == (0 if node.op_type == "Conv" else 1)


def test_only_gemms_read_quantized_tensors(calibrated):
    """No Q/DQ feeds LayerNorm, Softmax, GELU, a residual Add or anything else that is not a GEMM."""
    for result in (calibrated("int8"), calibrated("int8", recipe=Int8Recipe(attention_tokens=16,
                                                                            high_precision=HighPrecision.FP32))):
        g = int8_graph(result)
        dq_nodes = [n for n in g.model.graph.node if n.op_type == "DequantizeLinear"]
        assert dq_nodes
        for dq in dq_nodes:
            for consumer in g.consumers.get(dq.output[0], []):
                assert consumer.op_type in GEMMS, f"{dq.name} feeds {consumer.op_type} {consumer.name}"
        for node in g.model.graph.node:
            if node.op_type in ("LayerNormalization", "Softmax", "Erf", "Add"):
                assert not any(g.qdq(i) for i in node.input), f"Q/DQ feeds {node.op_type} {node.name}"


def _attention_quantized(result) -> dict[str, bool]:
    g = int8_graph(result)
    return {layer.path: all(g.qdq(i) is not None for i in g.nodes[layer.node].input)
            for layer in fp32_layers(result) if layer.is_attention and layer.path.startswith("encoder.")}


def test_attention_matmuls_follow_the_token_count_rule(calibrated):
    # vit-test-detr at 64x96: 4x6 = 24 patch tokens in the encoder
    under = calibrated("int8")  # default --attention-tokens 64 >= 24: quantized
    over = calibrated("int8", recipe=Int8Recipe(attention_tokens=16, high_precision=HighPrecision.FP32))
    assert {layer.tokens for layer in fp32_layers(under) if layer.path.startswith("encoder.") and layer.is_attention} == {24}
    quantized_under, quantized_over = _attention_quantized(under), _attention_quantized(over)
    assert len(quantized_under) == 4  # q@k^T and softmax@v of both blocks
    assert all(quantized_under.values())
    assert not any(quantized_over.values())
    kept = over.placement.summary()["kept_layers"]
    assert kept["encoder.blocks.0.attn.matmul_qk"] == "attention over 24 tokens > --attention-tokens 16"
    # the GEMMs around them are quantized either way
    qkv = next(layer.node for layer in fp32_layers(over) if layer.path == "encoder.blocks.0.attn.qkv")
    assert qkv in quantized_nodes(onnx.load(str(over.onnx_path)))


def test_output_layers_stay_in_high_precision(calibrated):
    result = calibrated("int8")
    g = int8_graph(result)
    outputs = {layer.path: layer for layer in fp32_layers(result) if layer.output}
    assert set(outputs) == {"head.class_embed", "head.box_embed.out"}
    for layer in outputs.values():
        assert not any(g.qdq(i) for i in g.nodes[layer.node].input), layer.path


def test_int8_keeps_normalization_and_softmax_in_fp32_under_fp16(calibrated):
    result = calibrated("int8")  # high precision fp16 (the TensorRT default)
    model = onnx.load(str(result.onnx_path))
    types = node_compute_types(model)
    for node in model.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax"):
            assert types[node.name] == TensorProto.FLOAT, node.name
    assert any(t == TensorProto.FLOAT16 for n, t in types.items() if "MatMul" in n)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_outputs_run_in_onnxruntime_at_1_and_6_cameras(calibrated, precision):
    result = calibrated(precision)
    rng = np.random.default_rng(0)
    for cameras in (1, 6):
        out = run_graph(result.onnx_path, {"images": rng.standard_normal((cameras, 3, 64, 96)).astype(np.float32)})
        assert out["logits"].shape == (cameras, 10, 7) and out["boxes"].shape == (cameras, 10, 4)
        assert out["logits"].dtype == np.float32 and np.isfinite(out["boxes"]).all()


# ---- FP16 ---------------------------------------------------------------------------------------------
def test_fp16_computes_layernorm_softmax_and_outputs_in_fp32(calibrated):
    result = calibrated("fp16")
    model = onnx.load(str(result.onnx_path))
    types = node_compute_types(model)
    ln = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert ln and all(types[n.name] == TensorProto.FLOAT for n in ln)
    assert all(types[n.name] == TensorProto.FLOAT for n in model.graph.node if n.op_type == "Softmax")
    # the box regression layer and its sigmoid stay FP32; the encoder's GEMMs are FP16
    layers = {layer.path: layer for layer in fp32_layers(result)}
    assert types[layers["head.box_embed.out"].node] == TensorProto.FLOAT
    assert types[layers["encoder.blocks.0.mlp.fc1"].node] == TensorProto.FLOAT16
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT, value.name
    assert result.fp16.fp32_ops["LayerNormalization"] == len(ln)
    assert result.fp16.reference_frames == 16  # AutoCast's range check saw every calibration frame


# ---- what the manifest says --------------------------------------------------------------------------
def test_variant_and_report_are_recorded(calibrated):
    result = calibrated("int8")
    bundle = Bundle.open(result.bundle.path)
    variant = bundle.manifest.graph().variant("int8")
    assert variant.file == "model.int8.onnx" and variant.status.value == "good"
    assert variant.sha256 == sha256_file(bundle.path / "model.int8.onnx")
    data = variant.details["data"]
    assert data["samples"] == 16 and data["heldout"] == 8 and len(data["sha256"]) == 64
    assert variant.details["recipe"] == {"method": "entropy", "high_precision": "fp16", "attention_tokens": 64,
                                         "exclude": []}
    assert bundle.manifest.calibration["int8"]["data_sha256"] == data["sha256"]
    assert (bundle.path / "calibration_report.int8.json").is_file()
    assert bundle.onnx_path("int8") == bundle.path / "model.int8.onnx"


# ---- the recipe on hand-made graphs (no ModelOpt) ------------------------------------------------------------
def _block_graph(tokens: int) -> onnx.ModelProto:
    """x (1, T, 8) -> LN -> qkv-less attention: softmax((x W) (x W)^T * s) (x W) -> + x -> out."""
    d = 8
    w = numpy_helper.from_array(np.eye(d, dtype=np.float32), "w")
    scale = numpy_helper.from_array(np.array(0.5, np.float32), "s")
    ln_w = numpy_helper.from_array(np.ones(d, np.float32), "ln_w")
    ln_b = numpy_helper.from_array(np.zeros(d, np.float32), "ln_b")
    perm = [0, 2, 1]
    nodes = [
        helper.make_node("LayerNormalization", ["x", "ln_w", "ln_b"], ["h"], name="ln", axis=-1),
        helper.make_node("MatMul", ["h", "w"], ["q"], name="proj"),
        helper.make_node("Transpose", ["q"], ["kt"], name="t", perm=perm),
        helper.make_node("Mul", ["q", "s"], ["qs"], name="scale"),
        helper.make_node("MatMul", ["qs", "kt"], ["scores"], name="qk"),
        helper.make_node("Softmax", ["scores"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "q"], ["ctx"], name="pv"),
        helper.make_node("Add", ["x", "ctx"], ["res"], name="residual"),
        helper.make_node("MatMul", ["res", "w"], ["y"], name="head"),
    ]
    graph = helper.make_graph(nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, tokens, d])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, tokens, d])],
                              [w, scale, ln_w, ln_b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_find_layers_reads_attention_and_token_count_from_the_graph():
    layers = {layer.node: layer for layer in find_layers(_block_graph(tokens=20))}
    assert layers["proj"].kind is LayerKind.GEMM and not layers["proj"].output
    assert layers["qk"].kind is LayerKind.ATTENTION_SCORES and layers["qk"].tokens == 20
    assert layers["pv"].kind is LayerKind.ATTENTION_CONTEXT and layers["pv"].tokens == 20
    assert layers["head"].output  # writes the graph output directly


@pytest.mark.parametrize(("tokens", "limit", "quantized"), [(20, 512, True), (20, 16, False), (16, 16, True)])
def test_plan_quantizes_attention_only_up_to_the_token_limit(tokens, limit, quantized):
    plan = plan_int8(find_layers(_block_graph(tokens=tokens)), Int8Recipe(attention_tokens=limit))
    assert ("qk" in plan.quantized) is quantized and ("pv" in plan.quantized) is quantized
    assert "proj" in plan.quantized and "head" not in plan.quantized


def test_exclude_patterns_keep_layers_and_typos_are_errors(calibrated):
    layers = fp32_layers(calibrated("int8"))
    plan = plan_int8(layers, Int8Recipe(exclude=("encoder.blocks.1.mlp", "head.decoder.*.cross_attn.q_proj")))
    kept = plan.summary()["kept_layers"]
    assert kept["encoder.blocks.1.mlp.fc1"] == kept["encoder.blocks.1.mlp.fc2"] == "--exclude encoder.blocks.1.mlp"
    assert "head.decoder.layers.0.cross_attn.q_proj" in kept and "head.decoder.layers.1.cross_attn.q_proj" in kept
    assert "encoder.blocks.0.mlp.fc1" not in kept
    with pytest.raises(CalibrationError, match="matches no layer"):
        plan_int8(layers, Int8Recipe(exclude=("encoder.blocks.9.mlp",)))


def test_isolate_qdq_gives_non_gemm_consumers_the_unquantized_tensor():
    """ModelOpt shares one Q/DQ between a GEMM and a residual Add that read the same tensor."""
    d = 4
    inits = [numpy_helper.from_array(np.eye(d, dtype=np.float32), "w"),
             numpy_helper.from_array(np.array(0.1, np.float32), "sc"),
             numpy_helper.from_array(np.array(0, np.int8), "zp")]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sc", "zp"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "sc", "zp"], ["xdq"], name="dq"),
        helper.make_node("MatMul", ["xdq", "w"], ["m"], name="gemm"),
        helper.make_node("Add", ["xdq", "m"], ["y"], name="residual"),
    ]
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, d])], inits),
        opset_imports=[helper.make_opsetid("", 19)])
    model = isolate_qdq(model, {"gemm"})
    by_name = {n.name: n for n in model.graph.node}
    assert list(by_name["residual"].input) == ["x", "m"]
    assert by_name["gemm"].input[0] == "xdq"
    assert quantized_nodes(model) == {"gemm"}
    model = isolate_qdq(model, set())  # nothing planned: the pair goes away entirely
    assert {n.op_type for n in model.graph.node} == {"MatMul", "Add"}
