"""ONNX Runtime-only graph rewrites: the fused graph computes what the bundle's graph computes, a
block that differs from the pattern in any detail is left alone, and the backend says what it did."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from vitdeploy.runtime.backends.onnxruntime import SessionSettings, cpu_session, from_bundle, run_on_cpu  # noqa: E402
from vitdeploy.runtime.backends.onnxruntime_fusions import FusionCounts, fuse_for_onnxruntime  # noqa: E402


def images(bundle, cameras=3):
    h, w = bundle.manifest.image_size
    return {"images": np.random.default_rng(0).standard_normal((cameras, 3, h, w)).astype(np.float32)}


def assert_same_outputs(plain, fused, feed):
    expected, got = run_on_cpu(plain, feed), run_on_cpu(cpu_session(fused), feed)
    assert set(expected) == set(got)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("name", ["vit-test-detr", "vit-test-cls"])
def test_the_fused_graph_gives_the_bundle_graphs_outputs(exported, name):
    bundle = exported(name, max_cameras=4)
    model = onnx.load(str(bundle.onnx_path("fp32")))
    fused, counts = fuse_for_onnxruntime(model)
    qkv_splits = sum(n.op_type == "Transpose" and list(n.attribute[0].ints) == [2, 0, 3, 1, 4] for n in model.graph.node)
    erfs = sum(n.op_type == "Erf" for n in model.graph.node)
    assert counts == FusionCounts(attention=qkv_splits, bias_gelu=erfs) and qkv_splits > 0  # every encoder block
    ops = {n.op_type for n in fused.graph.node}
    assert {"Attention", "BiasGelu"} <= ops and "Erf" not in ops
    assert len(model.graph.node) > len(fused.graph.node)  # the bundle's own graph is not touched
    assert_same_outputs(model, fused, images(bundle))


def _with_constant(model, name, value):
    """A copy of ``model`` with initializer ``name`` set to ``value`` (same dtype)."""
    from onnx import numpy_helper

    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    for i, t in enumerate(changed.graph.initializer):
        if t.name == name:
            changed.graph.initializer[i].CopyFrom(numpy_helper.from_array(
                np.asarray(value, dtype=numpy_helper.to_array(t).dtype), name))
    return changed


def _producer_input(model, op_type, index):
    """Input ``index`` of the first ``op_type`` node."""
    return next(n.input[index] for n in model.graph.node if n.op_type == op_type)


def test_blocks_that_differ_from_the_pattern_are_left_alone(exported):
    """A GELU whose half is 0.4 is not a GELU; an attention whose scores are also a graph output
    cannot lose them; a graph with nothing to fuse comes back with the same nodes."""
    bundle = exported("vit-test-detr", max_cameras=4)
    model = onnx.load(str(bundle.onnx_path("fp32")))
    _, counts = fuse_for_onnxruntime(model)

    erf = next(n for n in model.graph.node if n.op_type == "Erf")
    add_one = next(n for n in model.graph.node if erf.output[0] in n.input)
    half_mul = next(n for n in model.graph.node if add_one.output[0] in n.input)
    half = next(i for i in half_mul.input if i != add_one.output[0])
    not_gelu = _with_constant(model, half, 0.4)
    fused, changed = fuse_for_onnxruntime(not_gelu)
    assert changed.bias_gelu == 0 and changed.attention == counts.attention
    assert_same_outputs(not_gelu, fused, images(bundle, cameras=1))

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    softmax = next(n for n in exposed.graph.node if n.op_type == "Softmax")
    exposed.graph.output.append(onnx.helper.make_empty_tensor_value_info(softmax.input[0]))
    _, changed = fuse_for_onnxruntime(exposed)
    assert changed.attention == counts.attention - 1

    nothing, none = fuse_for_onnxruntime(model, fusions=())
    assert none == FusionCounts() and none.describe() == "none"
    assert [n.op_type for n in nothing.graph.node] == [n.op_type for n in model.graph.node]


def test_the_backend_runs_the_fused_graph_and_says_so(exported, hide):
    bundle = exported("vit-test-detr", max_cameras=4)
    feed = images(bundle, cameras=2)
    outputs = {}
    for label, settings in (("fused", SessionSettings()), ("plain", SessionSettings(fusions=False))):
        with from_bundle(bundle, settings=settings) as backend:
            outputs[label] = backend.infer(feed)
            fusions = backend.describe()["fusions"]
            if label == "fused":
                assert fusions.startswith("attention ") and "bias_gelu" in fusions
            else:
                assert fusions == "off"
    for name in outputs["plain"]:
        np.testing.assert_allclose(outputs["fused"][name], outputs["plain"][name], rtol=1e-4, atol=1e-4)

    hide("onnx")  # the car-side install: the bundle's graph as it is, and the reason in describe()
    with from_bundle(bundle) as backend:
        assert backend.describe()["fusions"] == "off (onnx not installed: pip install onnx)"
        np.testing.assert_allclose(backend.infer(feed)["logits"], outputs["plain"]["logits"], atol=1e-6)
