"""Every head type gets its task-level agreement, and its output layers stay in high precision."""

from __future__ import annotations

import onnx
import pytest

from vitdeploy.bundle import Bundle, Precision
from vitdeploy.calibration import HighPrecision, Int8Recipe, LayerKind, find_layers
from vitdeploy.calibration.int8 import quantized_nodes

CPU_RECIPE = Int8Recipe(high_precision=HighPrecision.FP32)


@pytest.mark.parametrize(("model", "metric", "outputs"), [
    ("vit-test-mask", "mask_iou", {"head.class_embed", "head.mask_embed.fc2", "head.pixel_decoder.net.6", "head"}),
    # classification heads share the encoder recipe with the detector: slow (run with -m slow)
    pytest.param("vit-test-cls", "top1", None, marks=pytest.mark.slow),
    pytest.param("vit-test-tab", "top1", None, marks=pytest.mark.slow),
])
def test_task_agreement_and_output_layers_per_head(calibrated, model, metric, outputs):
    result = calibrated("int8", model=model, recipe=CPU_RECIPE)
    task = result.report.task
    assert task.metric == metric and 0.0 <= task.value <= 1.0
    layers = find_layers(onnx.load(str(Bundle.open(result.bundle.path).onnx_path(Precision.FP32))))
    kept_outputs = {layer.path for layer in layers if layer.output}
    assert kept_outputs
    if outputs is not None:
        assert kept_outputs == outputs
    quantized = quantized_nodes(onnx.load(str(result.onnx_path)))
    assert not quantized & {layer.node for layer in layers if layer.output}
    assert quantized  # and the encoder is quantized


def test_mask_product_is_found_and_kept(calibrated):
    result = calibrated("int8", model="vit-test-mask", recipe=CPU_RECIPE)
    products = [layer for layer in result.placement.layers if layer.kind is LayerKind.PRODUCT]
    assert [p.path for p in products] == ["head"]
    assert result.placement.summary()["kept_layers"]["head"] == "output layer: writes a graph output directly"
    convs = [layer for layer in result.placement.layers if layer.op_type == "ConvTranspose"]
    assert convs and all(layer.node in result.placement.quantized for layer in convs)
