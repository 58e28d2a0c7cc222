"""Accuracy at the task level: a trained detector's FP16 and INT8 graphs agree with FP32.

FP32 detections at score >= 0.5 are the ground truth; the low-precision detections at score >=
0.05 are ranked against them with COCO mAP@[.50:.95] (vitdeploy.calibration.report).
"""

from __future__ import annotations

import pytest
from quantize_faults import coarsen_activations

from vitdeploy.calibration import CalibrationOptions, HighPrecision, Int8Recipe, calibrate_bundle


def test_trained_detector_fp16_and_int8_agree_with_fp32(trained_detr, bundle_copy):
    bundle = bundle_copy(trained_detr).path
    fp16 = calibrate_bundle(bundle, precision="fp16",
                            options=CalibrationOptions(samples=128, heldout=64, min_agreement=0.99))
    int8 = calibrate_bundle(bundle, precision="int8",
                            options=CalibrationOptions(samples=128, heldout=64, min_agreement=0.90))
    # there is something to agree on: the trained model detects objects confidently
    assert fp16.report.task.details["ground_truth_boxes"] >= 100
    assert fp16.report.agreement >= 0.99, fp16.report.task
    assert int8.report.agreement >= 0.90, int8.report.task
    assert fp16.status.value == "good" and int8.status.value == "good"
    # INT8 really is quantized: every encoder GEMM and the attention matmuls carry Q/DQ
    assert len(int8.placement.quantized) >= 30
    assert int8.report.outputs["logits"].max_abs > fp16.report.outputs["logits"].max_abs


def test_auto_fallback_keeps_the_worst_group_in_high_precision(trained_detr, bundle_copy, monkeypatch):
    from vitdeploy.calibration import calibrate as calibrate_module

    real = calibrate_module.quantize_int8
    bad_group = "encoder.blocks.1.mlp"

    def quantize_with_a_bad_group(src, out, **kwargs):
        result = real(src, out, **kwargs)
        bad = {layer.node for layer in result.quantized_layers() if layer.group == bad_group}
        coarsen_activations(out, bad)
        return result

    monkeypatch.setattr(calibrate_module, "quantize_int8", quantize_with_a_bad_group)
    bundle = bundle_copy(trained_detr).path
    result = calibrate_bundle(bundle, precision="int8",
                              options=CalibrationOptions(samples=64, heldout=32, min_agreement=0.999,
                                  auto_fallback=True, recipe=Int8Recipe(high_precision=HighPrecision.FP32)))
    ranking, fallback = result.sensitivity, result.fallback
    assert ranking[0].group == bad_group and ranking[0].cost > 0.05  # measured: 0.084
    assert all(g.cost < ranking[0].cost for g in ranking[1:])
    assert fallback.excluded == [bad_group] and fallback.reached
    assert result.suggested_exclude[0] == bad_group
    # the file on disk was re-quantized with the group excluded, and says so
    assert set(result.variant.details["recipe"]["exclude"]) == {"encoder.blocks.1.mlp.fc1", "encoder.blocks.1.mlp.fc2"}
    assert not {layer.node for layer in result.placement.layers if layer.group == bad_group} & set(
        result.placement.quantized)
    assert result.status.value == "good" and result.report.agreement >= 0.999


@pytest.mark.slow
def test_demo_detr_int8_agreement(exported, bundle_copy):
    from vitdeploy.models.zoo import get_card

    card = get_card("demo-detr")
    try:
        from importlib import resources

        present = resources.files("vitdeploy.models").joinpath("weights", card.weights).is_file()
    except (ModuleNotFoundError, FileNotFoundError):
        present = False
    if not present:
        pytest.skip("demo-detr weights are not in the package yet (tools/train_demo.py makes them)")
    bundle = bundle_copy(exported("demo-detr", max_cameras=6)).path
    fp16 = calibrate_bundle(bundle, precision="fp16",
                            options=CalibrationOptions(samples=256, heldout=64, min_agreement=0.99))
    int8 = calibrate_bundle(bundle, precision="int8",
                            options=CalibrationOptions(samples=256, heldout=64, min_agreement=0.90))
    assert fp16.report.agreement >= 0.99 and int8.report.agreement >= 0.90
