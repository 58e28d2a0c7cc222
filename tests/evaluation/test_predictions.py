"""Predictions files: the COCO results JSON `vitdeploy eval --predictions` writes reproduces the
report's mAP when an outside COCO tool scores it against the dataset's own annotations file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_evaluate import ScriptedBackend, perfect_detr

from vitdeploy.bundle import Precision
from vitdeploy.data.coco import write_coco
from vitdeploy.evaluation.datasets import open_dataset
from vitdeploy.evaluation.evaluate import EvalReport, category_map, check_compatible, evaluate_backends
from vitdeploy.evaluation.predictions import write_predictions
from vitdeploy.runtime.configs import Configuration


@pytest.fixture(scope="module")
def manifest(exported):
    return exported("vit-test-detr").manifest


def test_a_coco_tool_scores_the_predictions_file_as_the_report_does(manifest, tmp_path):
    from faster_coco_eval import COCO, COCOeval_faster

    write_coco(tmp_path / "val", frames=3, cameras=2, size=(64, 96), seed=5)
    data = open_dataset(tmp_path / "val", image_size=(64, 96))
    images = list(data.images())
    outputs = perfect_detr(images, manifest.preprocessing)[0]
    outputs["boxes"][1::2] = outputs["boxes"][1::2] * np.float32(0.8)  # every other image: boxes moved and shrunk
    config = Configuration("scripted", Precision.FP32)
    ids: list[int] = []
    spec = manifest.graph().inputs[0]
    result = evaluate_backends({config: ScriptedBackend(spec, [outputs])}, data, manifest, batch=6, image_ids=ids)[config]
    assert 0.2 < result.scores.map < 0.9  # neither perfect nor nothing: the comparison means something
    report = EvalReport(bundle={}, dataset={}, machine={}, results=[result], image_ids=ids,
                        categories=category_map(data, check_compatible(manifest, data)))
    [path] = write_predictions(report, tmp_path / "preds")
    assert path.name == "scripted.fp32.json"
    gt = COCO(str(tmp_path / "val" / "annotations.json"))
    evaluator = COCOeval_faster(gt, gt.loadRes(json.loads(path.read_text())), iouType="bbox",
                                print_function=lambda *a: None)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert float(evaluator.stats[0]) == pytest.approx(result.scores.map, abs=2e-3)
    assert float(evaluator.stats[1]) == pytest.approx(result.scores.map50, abs=2e-3)
