"""`vitdeploy eval` as a user runs it: a 6-frame synthetic set through ONNX and the PyTorch reference."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module")
def trained_like(exported, tmp_path_factory):
    """vit-test-detr exported from a saved checkpoint, so the PyTorch reference can be rebuilt."""
    from vitdeploy.models.zoo import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "vit-test-detr.pt"
    torch.save(build_model("vit-test-detr").state_dict(), path)
    return exported("vit-test-detr", checkpoint=path).path


def test_help_shows_examples(invoke):
    r = invoke("eval", "--help")
    assert r.exit_code == 0 and "Example" in r.output and "synthetic" in r.output


def test_eval_on_six_synthetic_frames_beside_fp32_onnx_and_pytorch(invoke, trained_like, tmp_path):
    out = tmp_path / "eval.json"
    r = invoke("eval", trained_like, "--data", "synthetic:frames=6", "--json", out, "--markdown", tmp_path / "e.md")
    assert r.exit_code == 0, r.output
    assert "mAP50" in r.output and "torch fp32 (ref)" in r.output and "onnxruntime fp32" in r.output
    raw = json.loads(out.read_text())
    assert raw["schema"] == "vitdeploy.eval/1" and raw["dataset"]["images"] == 6
    rows = {(x["backend"], x["precision"]): x for x in raw["results"]}
    torch_ref, onnx = rows[("torch", "fp32")], rows[("onnxruntime", "fp32")]
    assert torch_ref["role"] == "PyTorch reference" and onnx["role"] == "FP32 ONNX"
    for x in (torch_ref, onnx):
        assert x["status"] == "ok" and x["scores"]["images"] == 6
        assert 0.0 <= x["scores"]["map"] <= x["scores"]["map50"] <= 1.0
    # the export passed parity, so the same weights score the same on the same frames
    assert onnx["scores"]["map50"] == pytest.approx(torch_ref["scores"]["map50"], abs=0.01)
    assert "| onnxruntime | fp32 | FP32 ONNX |" in (tmp_path / "e.md").read_text()


def test_random_weights_have_no_pytorch_reference(invoke, exported):
    r = invoke("eval", exported("vit-test-detr").path, "--data", "synthetic:frames=2")
    assert r.exit_code == 0, r.output  # the reference is not something the user asked for
    assert "skipped torch fp32" in r.output and "random weights" in r.output


def test_a_precision_asked_for_that_cannot_be_scored_is_exit_1(invoke, exported):
    r = invoke("eval", exported("vit-test-detr").path, "--data", "synthetic:frames=2", "--precision", "fp32,int8")
    assert r.exit_code == 1, r.output
    assert "skipped onnxruntime int8" in r.output and "no int8 ONNX" in r.output
    assert "could not score: precision int8" in r.output and "Traceback" not in r.output


def test_eval_fails_when_the_fp32_onnx_cannot_be_scored(invoke, trained_like, tmp_path):
    import shutil

    broken = tmp_path / "bundle"
    shutil.copytree(trained_like, broken)
    (broken / "model.onnx").write_bytes(b"truncated")
    r = invoke("eval", broken, "--data", "synthetic:frames=2")
    assert r.exit_code == 1, r.output  # before: 0, with only the PyTorch reference scored
    assert "torch fp32 (ref)" in r.output and "FP32 ONNX graph" in r.output


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(("data", "message"), [
    (lambda tmp: tmp / "missing", "does not exist"),
    (lambda tmp: write(tmp / "x.json", '{"hello": 1}'), "not a COCO detection file"),
    (lambda tmp: write(tmp / "y.json", json.dumps({"images": [], "annotations": [],
                                                   "categories": [{"id": 1, "name": "zebra"}]})), "no images"),
    (lambda tmp: write(tmp / "z.json", json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}], "annotations": [],
        "categories": [{"id": 1, "name": "zebra"}]})), "['zebra'] are not the model's"),
])
def test_bad_data_is_one_line_and_exit_1(invoke, exported, tmp_path, data, message):
    r = invoke("eval", exported("vit-test-detr").path, "--data", data(tmp_path))
    assert r.exit_code == 1, r.output
    assert message in r.output and "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.startswith("error:")]) == 1


def test_eval_writes_a_coco_results_file_per_configuration(invoke, trained_like, tmp_path):
    from faster_coco_eval import COCO

    from vitdeploy.data.coco import write_coco

    write_coco(tmp_path / "val", frames=3, cameras=2, size=(64, 96), seed=5)
    r = invoke("eval", trained_like, "--data", tmp_path / "val", "--predictions", tmp_path / "preds")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "preds").iterdir()) == ["onnxruntime.fp32.json", "torch.fp32.json"]
    gt = COCO(str(tmp_path / "val" / "annotations.json"))
    for name in ("onnxruntime.fp32.json", "torch.fp32.json"):
        results = json.loads((tmp_path / "preds" / name).read_text())
        assert results and all(set(d) == {"image_id", "category_id", "bbox", "score"} for d in results)
        assert {d["image_id"] for d in results} == set(gt.getImgIds())  # the COCO file's own ids
        assert {d["category_id"] for d in results} <= set(gt.getCatIds())
        assert len(gt.loadRes(results).getAnnIds()) == len(results)
