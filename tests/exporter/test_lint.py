"""Lint rules on tiny hand-built graphs: each rule fires on its pattern and stays quiet otherwise."""

import onnx
from onnx import TensorProto, helper

from vitdeploy.exporter.lint import lint_model


def _model(nodes, inputs, outputs, opset=18, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def rules(model):
    return sorted({f.rule for f in lint_model(model)})


def test_decomposed_layernorm_is_found():
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mu"], keepdims=1),
        helper.make_node("Sub", ["x", "mu"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], keepdims=1),
        helper.make_node("Sqrt", ["var"], ["y"]),
    ]
    findings = lint_model(_model(nodes, [_f("x", [2, 4])], [_f("y", [2, 1])], initializers=[two]))
    assert [f.rule for f in findings] == ["decomposed-layernorm"]
    assert "LayerNormalization" in findings[0].hint


def test_layernormalization_op_is_clean():
    s = helper.make_tensor("s", TensorProto.FLOAT, [4], [1.0] * 4)
    nodes = [helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=-1)]
    assert lint_model(_model(nodes, [_f("x", [2, 4])], [_f("y", [2, 4])], initializers=[s])) == []


def test_nonzero_if_and_unsupported_ops():
    nodes = [helper.make_node("NonZero", ["x"], ["nz"]), helper.make_node("Unique", ["x"], ["u"])]
    m = _model(nodes, [_f("x", [4])], [helper.make_tensor_value_info("nz", TensorProto.INT64, [1, None]), _f("u", [None])])
    assert rules(m) == ["data-dependent-op", "int64-output", "unsupported-op"]


def test_shape_tensor_input_is_an_error():
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"])]
    m = _model(nodes, [_f("x", [4]), helper.make_tensor_value_info("shape", TensorProto.INT64, [2])], [_f("y", [2, 2])])
    found = {f.rule: f.severity for f in lint_model(m)}
    assert found == {"shape-tensor-input": "error", "int64-input": "warning"}


def test_int64_cast_on_data_path_but_not_on_shape_path():
    data = [helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
            helper.make_node("Cast", ["xi"], ["y"], to=TensorProto.FLOAT)]
    assert rules(_model(data, [_f("x", [4])], [_f("y", [4])])) == ["int64-data"]
    shape_path = [helper.make_node("Shape", ["x"], ["s"]),
                  helper.make_node("Cast", ["s"], ["si"], to=TensorProto.INT64),
                  helper.make_node("Reshape", ["x", "si"], ["y"])]
    assert rules(_model(shape_path, [_f("x", [4])], [_f("y", [4])])) == []


def test_custom_domain_op():
    node = helper.make_node("FusedMatMul", ["x", "x"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "g", [_f("x", [2, 2])], [_f("y", [2, 2])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    assert rules(m) == ["custom-op"]


def test_sanity_models_are_valid_onnx():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    onnx.checker.check_model(_model(nodes, [_f("x", [4])], [_f("y", [4])]))
