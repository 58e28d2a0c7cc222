"""Calibrating a rig-level 3D graph: whole frame sets in, agreement with FP32 by the 3D metric."""

import numpy as np
import pytest

from vitdeploy.calibration import CalibrationOptions, calibrate_bundle
from vitdeploy.calibration.modelopt_runner import _per_set


@pytest.fixture
def rig_bundle(rig3d_bundle, bundle_copy):
    return bundle_copy(rig3d_bundle)


def _check_agreement(result) -> None:
    task = result.report.task
    assert task.metric == "detection3d_map" and "centre distance" in task.description
    assert task.details["frame_sets"] == 4 and task.details["ground_truth_boxes"] > 0
    assert task.value >= 0.9, task
    assert result.data.set_cameras == 6 and result.data.samples == 16 and result.data.heldout_samples == 4
    assert result.data.calibration["images"].shape[0] == 16 * 6  # frame sets one after the other
    assert result.data.calibration["intrinsics"].shape == (16 * 6, 3, 3)


def test_fp16_agrees_with_fp32_on_generated_frame_sets_and_eval_scores_each_precision(rig_bundle):
    from vitdeploy.bundle import Bundle, Precision
    from vitdeploy.evaluation.datasets import open_dataset
    from vitdeploy.evaluation.evaluate import eval_plan, evaluate_bundle

    result = calibrate_bundle(rig_bundle.path, precision="fp16",
                              options=CalibrationOptions(samples=16, heldout=4))
    _check_agreement(result)
    assert result.fp16.reference_frames % 6 == 0  # AutoCast ran whole frame sets
    bundle = Bundle.open(rig_bundle.path)
    data = open_dataset("synthetic:frames=3", image_size=(64, 96), task="detection3d")
    report = evaluate_bundle(bundle, data, configs=eval_plan(bundle, precisions=[Precision.FP32, Precision.FP16]))
    scores = {r.config.precision: r.scores for r in report.results if r.config.backend == "onnxruntime"}
    assert report.metrics == ["map3d", "mate", "mase", "maoe"] and "mAP (nuScenes)" in report.to_markdown()
    assert scores[Precision.FP16].images == 3 and scores[Precision.FP16].mate is not None
    assert scores[Precision.FP16].map3d == pytest.approx(scores[Precision.FP32].map3d, abs=0.05)


def test_int8_keeps_attention_over_all_cameras_and_the_geometry_in_high_precision(rig_bundle):
    result = calibrate_bundle(rig_bundle.path, precision="int8",
                              options=CalibrationOptions(samples=16, heldout=4))
    _check_agreement(result)
    kept = {result.placement.layer(n).path: why for n, why in result.placement.kept.items()}
    # the Perceiver read attends to 6 cameras x 24 patches: too many keys for INT8 softmax @ V
    assert kept["head.read.attn.matmul_pv"] == "attention over 144 tokens > --attention-tokens 64"
    assert kept["head.rays.mlp.0"].startswith("head.rays.mlp: ray encoding")
    assert kept["head.box_embeds.0.fc2"].startswith("head.box_embeds.*.fc2: 3D box regression")
    quantized = {layer.path for layer in result.placement.quantized_layers()}
    # the GEMMs are quantized, the read's K/V projections over every camera's tokens among them
    assert {"encoder.blocks.0.attn.qkv", "head.read.attn.k_proj", "head.read.attn.v_proj"} <= quantized
    assert result.variant.details["data"]["frame_sets_of_cameras"] == 6


def test_sensitivity_is_refused_for_rig_graphs_before_any_work(rig_bundle, unchanged):
    from vitdeploy.errors import CalibrationError

    with unchanged(rig_bundle.path), pytest.raises(CalibrationError, match="rig-level"):
        calibrate_bundle(rig_bundle.path, precision="int8",
                         options=CalibrationOptions(samples=16, heldout=4, sensitivity=True))


def test_autocast_gets_one_file_per_frame_set(tmp_path):
    npz = tmp_path / "calibration.npz"
    np.savez(npz, images=np.arange(12.0).reshape(12, 1), intrinsics=np.arange(12.0).reshape(12, 1))
    folder = _per_set(str(npz), 6)
    files = sorted(p.name for p in (tmp_path / "calibration.sets").iterdir())
    assert folder.endswith("calibration.sets") and files == ["000000.npz", "000001.npz"]
    with np.load(tmp_path / "calibration.sets" / "000001.npz") as second:
        np.testing.assert_array_equal(second["images"][:, 0], np.arange(6.0, 12.0))

