"""A user's PyTorch factory (`vitdeploy export path/model.py:function --head ...`): exported, run in
ONNX Runtime and parity-checked like a zoo model; anything wrong in the user's code is one line,
exit code 1, and nothing written."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from vitdeploy.bundle import BoxFormat, BoxLayout, BoxUnits, Bundle, HeadSpec, ScoreActivation, SourceKind
from vitdeploy.bundle.files import sha256_file
from vitdeploy.errors import BundleError
from vitdeploy.exporter.export import ExportOptions
from vitdeploy.exporter.factory_export import export_factory
from vitdeploy.models.exported import exported_model
from vitdeploy.runtime.backends.onnxruntime import run_on_cpu

#: A small DETR-like detector in a user's file: queries attend to conv features; no vitdeploy in sight.
MODEL_PY = '''
import torch
from torch import nn


class Detector(nn.Module):
    def __init__(self, num_classes, queries=6, dim=32, tuple_outputs=False):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, dim, 8, 8), nn.GELU())
        self.queries = nn.Parameter(torch.randn(queries, dim))
        self.attn = nn.MultiheadAttention(dim, 4, batch_first=True)
        self.cls = nn.Linear(dim, num_classes + 1)
        self.box = nn.Linear(dim, 4)
        self.tuple_outputs = tuple_outputs

    def forward(self, images):
        memory = self.backbone(images).flatten(2).transpose(1, 2)
        q = self.queries.expand(images.shape[0], -1, -1)
        h, _ = self.attn(q, memory, memory)
        logits, boxes = self.cls(h), self.box(h).sigmoid()
        return (logits, boxes) if self.tuple_outputs else {"logits": logits, "boxes": boxes}


def build(num_classes):
    torch.manual_seed(0)
    return Detector(num_classes)


def build_tuple(num_classes=4):
    torch.manual_seed(0)
    return Detector(num_classes, tuple_outputs=True)


def build_unseeded():
    return Detector(3)


def build_raises():
    raise RuntimeError("weights not found: /data/ckpt.pt")


def build_wrong_type():
    return {"model": 1}


def build_wrong_outputs():
    class Boxes(nn.Module):
        def forward(self, images):
            return {"scores": images.mean((1, 2, 3))[:, None].expand(-1, 7)}
    return Boxes()
'''

SIZE = (48, 64)


@pytest.fixture(scope="module")
def model_py(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "model.py"
    path.write_text(textwrap.dedent(MODEL_PY))
    return path


@pytest.fixture(scope="module")
def factory_bundle(model_py, tmp_path_factory):
    out = tmp_path_factory.mktemp("factory_bundle")
    export_factory(f"{model_py}:build", out=out, head=HeadSpec("detr"),
                   options=ExportOptions(image_size=SIZE, classes=["car", "truck", "bus"], max_cameras=3))
    return Bundle.open(out)


def test_factory_exports_with_parity_and_runs_in_onnxruntime(factory_bundle, model_py):
    m = factory_bundle.manifest
    graph = m.graph()
    assert graph.parity.passed and set(graph.parity.cases) >= {"random@cameras=1", "random@cameras=3"}
    assert max(e.max_abs for e in graph.parity.worst().values()) < 1e-4
    # the head's config is read from the outputs: 6 queries, 3 classes + "no object"
    assert m.head.config == {"num_classes": 3, "num_queries": 6}
    assert m.class_names == ["car", "truck", "bus"] and m.patch_size is None
    assert m.source.kind is SourceKind.FACTORY and m.source.reference == f"{model_py}:build"
    assert m.source.sha256 == sha256_file(model_py)
    images = np.random.default_rng(1).standard_normal((3, 3, *SIZE)).astype(np.float32)
    got = run_on_cpu(factory_bundle.onnx_path(), {"images": images})
    with torch.no_grad():
        want = exported_model(m)(torch.from_numpy(images))  # the torch backend's model: the factory, called again
    for name in ("logits", "boxes"):
        np.testing.assert_allclose(got[name], want[name].numpy(), atol=1e-4, rtol=1e-3)


def test_tuple_outputs_are_named_by_the_head_order(model_py, tmp_path):
    result = export_factory(f"{model_py}:build_tuple", out=tmp_path, options=ExportOptions(image_size=SIZE),
                            head=HeadSpec("detr", scores=ScoreActivation.SIGMOID,
                                          boxes=BoxFormat(BoxLayout.XYXY, BoxUnits.PIXELS)))
    m = result.bundle.manifest
    assert [o.name for o in m.graph().outputs] == ["logits", "boxes"]
    # sigmoid: no "no object" column, so the 5 logits are 5 classes, named for want of names
    assert m.head.config["num_classes"] == 5 and m.class_names == [f"class_{i}" for i in range(5)]
    assert m.head.boxes == BoxFormat(BoxLayout.XYXY, BoxUnits.PIXELS)
    assert "pixels" in m.graph().outputs[1].meaning


def test_a_factory_whose_weights_change_has_no_torch_model(model_py, tmp_path):
    m = export_factory(f"{model_py}:build_unseeded", out=tmp_path, head=HeadSpec("detr"),
                       options=ExportOptions(image_size=SIZE, max_cameras=2)).bundle.manifest
    with pytest.raises(BundleError, match="now returns other weights"):
        exported_model(m)


@pytest.mark.parametrize(("function", "args", "message"), [
    ("build_raises", [], "the factory {ref} raised RuntimeError: weights not found: /data/ckpt.pt"),
    ("build_wrong_type", [], "the factory {ref} returned a dict, not a torch.nn.Module"),
    ("build_wrong_outputs", [], "the outputs do not fit a detr (softmax scores; boxes cx, cy, w, h in 0..1 of the "
                                "model input) head: expected logits [cameras, queries, classes + 1], boxes [cameras, "
                                "queries, 4]; got scores [cameras, 7]"),
    ("build", ["--classes", "a,b", "--head", "sam"], "sam heads take prompts beside the image"),
    ("build", ["--classes", "a,b", "--head", "yolo"], "unknown head kind 'yolo'"),
    ("build", ["--classes", "a,b", "--head", "cls", "--score", "sigmoid"], "cls heads have no class scores"),
    ("build", ["--head", "detr", "--classes", "a,b"], None),  # the control: this one exports
])
def test_bad_factories_are_one_line_exit_1_and_write_nothing(invoke, model_py, tmp_path, function, args, message):
    ref = f"{model_py}:{function}"
    out = tmp_path / "b"
    head = [] if "--head" in args else ["--head", "detr"]
    r = invoke("export", ref, "--out", out, "--image-size", f"{SIZE[0]}x{SIZE[1]}", "--max-cameras", 2, *head, *args)
    if message is None:
        assert r.exit_code == 0, r.output
        return
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert message.format(ref=ref) in r.output
    assert not out.exists()


@pytest.mark.parametrize(("reference", "message"), [
    ("{dir}/missing.py:build", "factory file {dir}/missing.py does not exist"),
    ("{dir}/model.py:nothing", "has no 'nothing'; it defines build, build_raises"),
    ("{dir}/broken.py:build", "cannot import {dir}/broken.py for the factory {dir}/broken.py:build: SyntaxError"),
    ("no_such_package_xyz.models:build", "cannot import no_such_package_xyz.models for the factory "
                                         "no_such_package_xyz.models:build: ModuleNotFoundError"),
    ("{dir}/model.py:", "is not a factory reference"),
])
def test_factories_that_cannot_be_imported(invoke, model_py, tmp_path, reference, message):
    (model_py.parent / "broken.py").write_text("def build(:\n")
    ref = reference.format(dir=model_py.parent)
    r = invoke("export", ref, "--out", tmp_path / "b", "--head", "detr", "--image-size", "48x64")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert message.format(dir=model_py.parent) in r.output
    assert not (tmp_path / "b").exists()


def test_factory_options_are_checked(invoke, model_py, tmp_path):
    r = invoke("export", f"{model_py}:build", "--out", tmp_path / "b", "--image-size", "48x64")
    assert r.exit_code == 1 and "say which head its outputs follow with --head" in r.output
    r = invoke("export", f"{model_py}:build", "--out", tmp_path / "b", "--head", "detr")
    assert r.exit_code == 1 and "give --image-size HxW" in r.output
    r = invoke("export", "vit-test-detr", "--out", tmp_path / "b", "--score", "sigmoid")
    assert r.exit_code == 1 and "is a zoo model, whose head vitdeploy knows" in r.output
    assert not (tmp_path / "b").exists()
