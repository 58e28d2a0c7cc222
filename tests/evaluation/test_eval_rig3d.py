"""`vitdeploy eval` of a rig-level 3D bundle on generated labelled frame sets (nuScenes-style scores)."""

import numpy as np
import pytest

from vitdeploy.bundle import Precision
from vitdeploy.data.rig_dataset import write_rig_dataset
from vitdeploy.evaluation.datasets import open_dataset
from vitdeploy.evaluation.evaluate import evaluate_backends
from vitdeploy.runtime.backends.base import Backend
from vitdeploy.runtime.configs import Configuration


class PerfectRig(Backend):
    """Answers each frame set with its ground truth (in the order the dataset gives them), after
    the usual feed validation: images and geometry must come with the same camera count."""

    name = "perfect"

    def __init__(self, graph, frame_sets, queries=40):
        super().__init__(inputs=graph.inputs, outputs=[], dim_ranges={"cameras": (1, 6)})
        self.truth = [s.boxes for s in frame_sets]
        self.queries = queries
        self.feeds = []

    def _infer(self, feed):
        self.feeds.append(feed)
        gt = self.truth.pop(0)
        logits = np.full((1, self.queries, 7), -10.0, np.float32)
        logits[0, :, 6] = 10.0
        boxes = np.zeros((1, self.queries, 8), np.float32)
        k = len(gt)
        logits[0, np.arange(k), gt.labels], logits[0, :k, 6] = 10.0, -10.0
        boxes[0, :k] = np.concatenate([gt.centers, gt.sizes, np.sin(gt.yaws)[:, None], np.cos(gt.yaws)[:, None]], 1)
        return {"logits": logits, "boxes3d": boxes}


@pytest.fixture(scope="module")
def rig_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("rig3d_data")
    write_rig_dataset(path, frames=4, size=(64, 96), seed=7, stride=13)
    return path


def test_perfect_boxes_score_one_on_a_written_3d_dataset(rig3d_bundle, rig_data):
    m = rig3d_bundle.manifest
    data = open_dataset(rig_data, image_size=(64, 96), task="detection3d")
    sets = list(data.images())
    assert len(sets) == 4 and sum(len(s.boxes) for s in sets) >= 8
    backend = PerfectRig(m.graph(), sets)
    config = Configuration("perfect", Precision.FP32)
    scores = evaluate_backends({config: backend}, data, m)[config].scores
    assert scores.images == 4 and scores.map3d == pytest.approx(1.0)
    assert scores.mate == pytest.approx(0.0, abs=1e-5) and scores.maoe == pytest.approx(0.0, abs=1e-5)
    feed = backend.feeds[0]  # one frame set per run, with each camera's geometry
    assert feed["images"].shape == (6, 3, 64, 96) and feed["cam_to_ego"].shape == (6, 4, 4)


def test_eval_scores_a_rig_bundle_per_precision(rig3d_bundle, rig_data, invoke, tmp_path):
    report = tmp_path / "eval.json"
    result = invoke("eval", rig3d_bundle.path, "--data", rig_data, "--json", report)
    assert result.exit_code == 0, result.output
    assert "mAP3D" in result.output and "mATE" in result.output and "4 frame sets" in result.output
    import json

    rows = {(r["backend"], r["precision"]): r for r in json.loads(report.read_text())["results"]}
    onnx, torch_ref = rows[("onnxruntime", "fp32")]["scores"], rows[("torch", "fp32")]["scores"]
    assert onnx["images"] == 4 and onnx["map3d"] is not None and onnx["mate"] is not None
    assert onnx["map3d"] == pytest.approx(torch_ref["map3d"], abs=1e-6)  # the graph is the PyTorch model
