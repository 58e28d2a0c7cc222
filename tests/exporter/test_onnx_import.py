"""`vitdeploy import`: an ONNX exported by plain ``torch.onnx.export`` from a DETR-like module written
here (not vitdeploy's) becomes a bundle that calibrate, run and bench take like an exported one; a
sigmoid-scored, xyxy-pixel variant decodes to the boxes of the module's own post-processing."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from vitdeploy.bundle import (
    NO_TORCH_REFERENCE,
    BoxFormat,
    BoxLayout,
    BoxUnits,
    Bundle,
    HeadSpec,
    ScoreActivation,
    SourceKind,
)
from vitdeploy.bundle.files import sha256_file
from vitdeploy.errors import VitDeployError
from vitdeploy.exporter.onnx_import import ImportOptions, import_onnx
from vitdeploy.heads import head_for
from vitdeploy.runtime.backends.onnxruntime import run_on_cpu

SIZE = (48, 64)
CLASSES = ["car", "truck", "pedestrian", "cyclist", "traffic_cone", "traffic_light"]  # the synthetic scenes'


class TinyDetr(nn.Module):
    """Conv features, learned queries cross-attending to them, a class and a box per query. DETR's
    contract (softmax over classes + "no object", cxcywh in 0..1) or, with ``sigmoid``, RT-DETR's
    scores with boxes as x1, y1, x2, y2 in input pixels. (Traced with a fixed batch, its
    nn.MultiheadAttention bakes the batch into reshapes, as many real models do.)"""

    def __init__(self, *, num_classes: int = 6, queries: int = 8, dim: int = 32, sigmoid: bool = False,
                 batch_one: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, dim, 8, 8), nn.ReLU(), nn.Conv2d(dim, dim, 1))
        self.queries = nn.Parameter(torch.randn(queries, dim))
        self.attn = nn.MultiheadAttention(dim, 4, batch_first=True)
        self.class_head = nn.Linear(dim, num_classes if sigmoid else num_classes + 1)
        self.box_head = nn.Linear(dim, 4)
        self.sigmoid = sigmoid
        self.batch_one = batch_one

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.features(images)
        # A graph exported with a fixed batch often bakes it into a reshape, as this does on request.
        memory = f.reshape(1, f.shape[1], -1).transpose(1, 2) if self.batch_one else f.flatten(2).transpose(1, 2)
        h, _ = self.attn(self.queries.expand(memory.shape[0], -1, -1), memory, memory)
        cxcywh = self.box_head(h).sigmoid()
        if not self.sigmoid:
            return self.class_head(h), cxcywh, h
        xy, wh = cxcywh[..., :2], cxcywh[..., 2:] * 0.5
        scale = torch.tensor([SIZE[1], SIZE[0], SIZE[1], SIZE[0]], dtype=h.dtype)
        return self.class_head(h), torch.cat([xy - wh / 2, xy + wh / 2], -1) * scale, h


def postprocess(logits: torch.Tensor, boxes: torch.Tensor, *, threshold: float, top_k: int) -> list[tuple]:
    """RT-DETR / Deformable DETR post-processing of one image: top-k over every (query, class) sigmoid
    score, then the threshold. -> [(label, score, x1, y1, x2, y2)], best first."""
    scores = logits.sigmoid().flatten()
    top = scores.topk(top_k)
    out = []
    for score, index in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        if score >= threshold:
            query, label = divmod(index, logits.shape[-1])
            out.append((label, score, *boxes[query].tolist()))
    return out


def export_plain(module: nn.Module, path, *, dynamic: bool = True) -> None:
    """What a training repo does: plain torch.onnx.export, its own tensor names, batch axis 'batch'."""
    names = ["pred_logits", "pred_boxes", "hidden"]
    axes = {n: {0: "batch"} for n in ["pixel_values", *names]} if dynamic else None
    torch.onnx.export(module.eval(), (torch.randn(1, 3, *SIZE),), str(path), input_names=["pixel_values"],
                      output_names=names, dynamic_axes=axes, opset_version=17, dynamo=False)


MAPPING = "logits=pred_logits,boxes=pred_boxes"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The DETR-like module's ONNX, imported through the CLI (as a user would)."""
    from typer.testing import CliRunner

    from vitdeploy.cli.app import app

    folder = tmp_path_factory.mktemp("imported")
    export_plain(TinyDetr(), folder / "detr.onnx")
    r = CliRunner().invoke(app, ["import", str(folder / "detr.onnx"), "--out", str(folder / "bundle"), "--head",
                                 "detr", "--classes", ",".join(CLASSES), "--outputs", MAPPING, "--max-cameras", "4"])
    assert r.exit_code == 0, r.output
    assert "parity: imported: no PyTorch reference" in r.output and "outputs the head does not use dropped: hidden" \
        in r.output
    return Bundle.open(folder / "bundle")


def test_import_records_source_and_runs_at_1_and_max_cameras(imported):
    m = imported.manifest
    assert m.source.kind is SourceKind.ONNX and m.source.parity == NO_TORCH_REFERENCE
    assert m.source.sha256 == sha256_file(m.source.reference) and imported.manifest.graph().parity is None
    assert m.head.config == {"num_classes": 6, "num_queries": 8} and m.class_names == CLASSES
    graph = m.graph()
    assert [(o.name, o.shape) for o in graph.outputs] == [("logits", ["cameras", 8, 7]), ("boxes", ["cameras", 8, 4])]
    assert graph.inputs[0].name == "pixel_values" and graph.inputs[0].shape == ["cameras", 3, *SIZE]
    model = onnx.load(str(imported.onnx_path()))
    assert [o.name for o in model.graph.output] == ["logits", "boxes"]  # renamed, "hidden" dropped
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "cameras"
    images = np.random.default_rng(0).standard_normal((4, 3, *SIZE)).astype(np.float32)
    with torch.no_grad():
        want = TinyDetr()(torch.from_numpy(images))
    got = run_on_cpu(imported.onnx_path(), {"pixel_values": images})
    np.testing.assert_allclose(got["logits"], want[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(got["boxes"], want[1].numpy(), atol=1e-5)


def test_imported_bundle_calibrates_to_int8_runs_two_cameras_benchmarks_and_evaluates(invoke, imported, bundle_copy,
                                                                                      tmp_path):
    b = bundle_copy(imported)
    r = invoke("calibrate", b.path, "--precision", "int8", "--samples", 16, "--heldout", 4)
    assert r.exit_code == 0, r.output
    assert Bundle.open(b.path).manifest.graph().variant("int8").status.value == "good"
    r = invoke("run", b.path, "--synthetic-cameras", 2, "--precision", "int8", "--max-frames", 3, "--fps", 0,
               "--out", tmp_path / "run", "--no-live")
    assert r.exit_code == 0, r.output
    records = [json.loads(line) for line in (tmp_path / "run" / "frames.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(len(rec["cameras"]) == 2 for rec in records)
    labels = {d["label"] for rec in records for cam in rec["cameras"] for d in cam["results"]}
    assert labels <= set(CLASSES)
    r = invoke("bench", b.path, "--cameras", "1,2", "--warmup", 1, "--iterations", 3, "--json", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    results = json.loads((tmp_path / "b.json").read_text())["results"]
    ran = {(x["backend"], x["precision"], x["cameras"]) for x in results if x["status"] == "ok"}
    assert {("onnxruntime", p, c) for p in ("fp32", "int8") for c in (1, 2)} <= ran
    # the torch reference is planned by default and skipped, saying why
    assert all(NO_TORCH_REFERENCE in x["reason"] for x in results if x["backend"] == "torch")
    r = invoke("eval", b.path, "--data", "synthetic:frames=2,cameras=2", "--json", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    rows = {(x["backend"], x["precision"]): x for x in json.loads((tmp_path / "e.json").read_text())["results"]}
    assert rows[("onnxruntime", "int8")]["status"] == "ok" and rows[("onnxruntime", "fp32")]["status"] == "ok"
    r = invoke("build", b.path, "--int8", "--print-trtexec", "--trt-version", 10)
    assert r.exit_code == 0, r.output
    assert "--minShapes=pixel_values:1x3x48x64" in r.output and "--maxShapes=pixel_values:4x3x48x64" in r.output


def test_sigmoid_xyxy_pixel_variant_decodes_to_the_modules_own_boxes(tmp_path):
    module = TinyDetr(sigmoid=True, num_classes=5).eval()
    with torch.no_grad():  # spread the scores so a threshold keeps some pairs and drops others
        module.class_head.bias.copy_(torch.linspace(-2, 2, 5))
    export_plain(module, tmp_path / "rtdetr.onnx")
    b = import_onnx(tmp_path / "rtdetr.onnx", out=tmp_path / "b", options=ImportOptions(
        head=HeadSpec("detr", scores=ScoreActivation.SIGMOID, boxes=BoxFormat(BoxLayout.XYXY, BoxUnits.PIXELS)),
        outputs={"logits": "pred_logits", "boxes": "pred_boxes"}, max_cameras=2)).bundle
    assert b.manifest.head.scores.value == "sigmoid" and "x1, y1, x2, y2" in b.manifest.graph().outputs[1].meaning
    images = np.random.default_rng(3).standard_normal((2, 3, *SIZE)).astype(np.float32)
    decoded = head_for(b.manifest).decode(run_on_cpu(b.onnx_path(), {"pixel_values": images}), score_threshold=0.4,
                                          top_k=10)
    with torch.no_grad():
        logits, boxes, _ = module(torch.from_numpy(images))
    for camera, result in enumerate(decoded):
        want = postprocess(logits[camera], boxes[camera], threshold=0.4, top_k=10)
        assert 0 < len(want) <= 10
        det = result.detections
        got = list(zip(det.labels.tolist(), det.scores.tolist(), *det.boxes.T.tolist(), strict=True))
        assert [g[0] for g in got] == [w[0] for w in want]
        np.testing.assert_allclose(np.array([g[1:] for g in got]), np.array([w[1:] for w in want]), rtol=1e-4,
                                   atol=1e-3)


class PatchClassifier(nn.Module):
    """Nothing in it depends on the batch size, so even a fixed-batch trace runs with any batch."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Conv2d(3, 16, 16, 16)
        self.fc = nn.Linear(16, 5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(images).mean((2, 3)))


def test_fixed_batch_of_one_is_made_the_camera_axis(tmp_path):
    torch.onnx.export(PatchClassifier(), (torch.zeros(1, 3, *SIZE),), str(tmp_path / "fixed.onnx"),
                      input_names=["images"], output_names=["logits"], dynamo=False)
    result = import_onnx(tmp_path / "fixed.onnx", out=tmp_path / "b", options=ImportOptions(head=HeadSpec("cls"),
                                                                                            max_cameras=3))
    assert "its fixed batch of 1 was made the dynamic camera axis" in result.notes
    assert result.bundle.manifest.head.config == {"num_classes": 5}
    images = np.random.default_rng(0).standard_normal((3, 3, *SIZE)).astype(np.float32)
    with torch.no_grad():
        want = PatchClassifier()(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(run_on_cpu(result.bundle.onnx_path(), {"images": images})["logits"], want, atol=1e-5)


def _fails(tmp_path, match, *, source="m.onnx", **options):
    options.setdefault("head", HeadSpec("detr"))
    with pytest.raises(VitDeployError, match=match):
        import_onnx(tmp_path / source, out=tmp_path / "b", options=ImportOptions(**options))
    assert not (tmp_path / "b").exists()


def test_a_batch_baked_into_the_graph_says_how_to_reexport(tmp_path):
    export_plain(TinyDetr(batch_one=True), tmp_path / "m.onnx", dynamic=False)
    _fails(tmp_path, r"fixed batch of 1 and does not run with 2 cameras .*re-export it with a dynamic batch axis, "
                     r"e.g. torch.onnx.export\(.*dynamic_axes=\{'pixel_values': \{0: 'cameras'\}",
           outputs={"logits": "pred_logits", "boxes": "pred_boxes"}, max_cameras=2)


def test_graph_errors_are_one_line_and_write_nothing(tmp_path):
    export_plain(TinyDetr(), tmp_path / "m.onnx")
    _fails(tmp_path, r"has no output 'logits' for the head's 'logits' \(its outputs: pred_logits, pred_boxes, "
                     r"hidden\); map them with --outputs")
    _fails(tmp_path, r"do not fit a detr .*expected logits \[cameras, 8, 7\], boxes \[cameras, 8, 4\]; got logits "
                     r"\[cameras, 8, 7\], boxes \[cameras, 8, 32\]",
           outputs={"logits": "pred_logits", "boxes": "hidden"})
    _fails(tmp_path, r"do not fit a detr .*expected logits \[cameras, 8, 6\]",
           outputs={"logits": "pred_logits", "boxes": "pred_boxes"}, classes=["a", "b", "c", "d", "e"])
    _fails(tmp_path, "--outputs maps masks, which the head does not have", outputs={"masks": "hidden"})
    _fails(tmp_path, "takes 48x64 images; drop --image-size", image_size=(64, 64),
           outputs={"logits": "pred_logits", "boxes": "pred_boxes"})
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    _fails(tmp_path, "cannot read .*junk.onnx as ONNX", source="junk.onnx")
    _fails(tmp_path, "missing.onnx does not exist", source="missing.onnx")


def test_an_input_that_is_not_nchw_images_is_refused(invoke, tmp_path):
    class TwoInputs(nn.Module):
        def forward(self, images, extra):
            return images.mean((2, 3)) + extra

    torch.onnx.export(TwoInputs(), (torch.zeros(1, 3, 8, 8), torch.zeros(1, 3)), str(tmp_path / "two.onnx"),
                      input_names=["images", "extra"], dynamo=False)
    r = invoke("import", tmp_path / "two.onnx", "--out", tmp_path / "b", "--head", "cls")
    assert r.exit_code == 1 and "has 2 inputs (images, extra)" in r.output and "Traceback" not in r.output
    torch.onnx.export(nn.Flatten(), (torch.zeros(1, 8, 8, 3),), str(tmp_path / "nhwc.onnx"), dynamo=False)
    r = invoke("import", tmp_path / "nhwc.onnx", "--out", tmp_path / "b", "--head", "cls")
    assert r.exit_code == 1 and "vitdeploy feeds float32 images (batch, 3, H, W)" in r.output
    assert not (tmp_path / "b").exists()
