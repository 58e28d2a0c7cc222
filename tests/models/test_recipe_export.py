"""Fine-tune, then export: the README's snippet runs (on a tiny random DINOv2 file of the README's
name; by default with vit-test-detr at 42x70 in place of vit-small-detr at 448x798, verbatim in the
slow test), its checkpoint alone exports, the bundle computes what the fine-tuned model computes, and the
torch backend rebuilds it from the manifest after the backbone file is gone. A plain state dict
exports with ``--backbone`` and ``--classes``; the headline command needs no checkpoint at all."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from backbone_sources import dinov2_keys, random_weights

from vitdeploy.bundle import Bundle
from vitdeploy.bundle.files import sha256_file
from vitdeploy.errors import CheckpointError
from vitdeploy.exporter.export import ExportOptions, export_model
from vitdeploy.models.exported import exported_model
from vitdeploy.runtime.backends.onnxruntime import run_on_cpu

README = Path(__file__).resolve().parents[2] / "README.md"
CLASSES = ["car", "truck", "bus", "pedestrian", "cyclist"]
SIZE = (42, 70)


MODEL = "vit-test-detr"  # the README's vit-small-detr, smaller: 2 decoder layers, 10 queries


def readme_snippet(*, quick: bool) -> str:
    code = re.search(r"<!-- fine-tune-snippet -->\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    if not quick:
        return code
    assert '"vit-small-detr"' in code and "448, 798" in code, "the README snippet changed: update the substitutions"
    return code.replace('"vit-small-detr"', f'"{MODEL}"').replace("448, 798", f"{SIZE[0]}, {SIZE[1]}")


def run_snippet(folder: Path, *, quick: bool):
    """The README's snippet, run in ``folder`` beside a tiny random dinov2_vits14_reg4.pth -> its model."""
    torch.save(random_weights(dinov2_keys(dim=128, depth=2, grid=4, registers=4)), folder / "dinov2_vits14_reg4.pth")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        scope: dict = {}
        exec(compile(readme_snippet(quick=quick), "README.md", "exec"), scope)  # noqa: S102 - our README's code
    finally:
        os.chdir(cwd)
    return scope["model"].eval()


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    return folder, run_snippet(folder, quick=True)


@pytest.fixture(scope="module")
def bundle_from_checkpoint(finetuned, tmp_path_factory):
    folder, _ = finetuned
    out = tmp_path_factory.mktemp("ft_bundle")
    cwd = os.getcwd()
    os.chdir(folder)  # the recipe names the backbone as the snippet gave it: relative to here
    try:
        export_model(MODEL, out=out, checkpoint=folder / "finetuned.safetensors",
                     options=ExportOptions(image_size=SIZE, max_cameras=2))
    finally:
        os.chdir(cwd)
    return Bundle.open(out)


def _outputs(model, images):
    with torch.no_grad():
        return {k: v.numpy() for k, v in model(torch.from_numpy(images)).items()}


def test_the_checkpoint_alone_exports_the_fine_tuned_model(finetuned, bundle_from_checkpoint):
    folder, model = finetuned
    m = bundle_from_checkpoint.manifest
    assert m.model == MODEL and m.class_names == CLASSES and m.head.config["num_classes"] == 5 and m.patch_size == 14
    backbone = m.source.backbone
    assert backbone.layout == "dinov2" and backbone.sha256 == sha256_file(folder / "dinov2_vits14_reg4.pth")
    assert backbone.encoder["patch_size"] == 14 and backbone.encoder["variant"]["register_tokens"] == 4
    assert m.preprocessing.mean == (0.485, 0.456, 0.406)  # DINOv2's convention, recorded
    assert m.graph().parity.passed
    images = np.random.default_rng(0).standard_normal((2, 3, *SIZE)).astype(np.float32)
    got = run_on_cpu(bundle_from_checkpoint.onnx_path(), {"images": images})
    want = _outputs(model, images)  # the fine-tuned model itself, resizing its position embedding on the fly
    for name in ("logits", "boxes"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=1e-3)


def test_the_torch_backend_rebuilds_it_without_the_backbone_file(finetuned, bundle_from_checkpoint, tmp_path):
    folder, model = finetuned
    m = bundle_from_checkpoint.manifest
    (folder / "dinov2_vits14_reg4.pth").rename(tmp_path / "moved.pth")
    try:
        rebuilt = exported_model(m)
    finally:
        (tmp_path / "moved.pth").rename(folder / "dinov2_vits14_reg4.pth")
    images = np.random.default_rng(1).standard_normal((1, 3, *SIZE)).astype(np.float32)
    got, want = _outputs(rebuilt, images), _outputs(model, images)
    for name in ("logits", "boxes"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)


def test_a_plain_state_dict_exports_with_backbone_and_classes(invoke, finetuned, bundle_from_checkpoint, tmp_path):
    folder, model = finetuned
    torch.save(model.state_dict(), tmp_path / "ft.pt")
    r = invoke("export", MODEL, "--checkpoint", tmp_path / "ft.pt", "--out", tmp_path / "b0", "--image-size", "48x64")
    assert r.exit_code == 1 and "give --backbone and --classes, or save it with vitdeploy.models.save_checkpoint" \
        in r.output
    r = invoke("export", MODEL, "--checkpoint", tmp_path / "ft.pt", "--backbone",
               folder / "dinov2_vits14_reg4.pth", "--classes", ",".join(CLASSES), "--image-size", "42x70",
               "--max-cameras", 2, "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    b = Bundle.open(tmp_path / "b")
    assert b.manifest.preprocessing.mean == (0.5, 0.5, 0.5) and b.manifest.class_names == CLASSES
    images = np.random.default_rng(2).standard_normal((2, 3, *SIZE)).astype(np.float32)
    got = run_on_cpu(b.onnx_path(), {"images": images})
    same = run_on_cpu(bundle_from_checkpoint.onnx_path(), {"images": images})
    np.testing.assert_allclose(got["logits"], same["logits"], atol=1e-6)


def test_a_saved_recipe_contradicted_is_refused(finetuned, tmp_path):
    folder, _ = finetuned
    ckpt = folder / "finetuned.safetensors"
    with pytest.raises(CheckpointError, match=f"holds a {MODEL} model, not vit-test-cls"):
        export_model("vit-test-cls", out=tmp_path, checkpoint=ckpt)
    with pytest.raises(CheckpointError, match="predicts car,truck,bus,pedestrian,cyclist; --classes a,b differs"):
        export_model(MODEL, out=tmp_path, checkpoint=ckpt, options=ExportOptions(classes=["a", "b"]))
    assert not any(tmp_path.iterdir())


def test_the_headline_command_builds_the_head_for_the_backbone(invoke, finetuned, tmp_path):
    folder, _ = finetuned
    backbone = folder / "dinov2_vits14_reg4.pth"
    r = invoke("export", "vit-test-mask", "--backbone", backbone, "--classes", ",".join(CLASSES), "--out",
               tmp_path / "b", "--image-size", "64x96", "--max-cameras", 2)
    assert r.exit_code == 1 and "not a multiple of the patch size 14 of vit-test-mask; try 70x98" in r.output
    r = invoke("export", "vit-test-mask", "--backbone", backbone, "--classes", ",".join(CLASSES), "--out",
               tmp_path / "b", "--image-size", "42x70", "--max-cameras", 2)
    assert r.exit_code == 0, r.output
    m = Bundle.open(tmp_path / "b").manifest
    assert m.head.config["mask_stride"] == 7 and m.graph().outputs[1].shape == ["cameras", 5, 6, 10]
    assert m.source.backbone.source == str(backbone) and m.checkpoint is None
    r = invoke("info", tmp_path / "b")
    assert f"backbone {backbone} (dinov2)" in r.output.replace("\n", "")


@pytest.mark.slow
def test_the_readme_snippet_verbatim_then_its_export_command(tmp_path):
    model = run_snippet(tmp_path, quick=False)
    assert model(torch.rand(1, 3, 448, 798))["logits"].shape == (1, 100, 6)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:  # vitdeploy export vit-small-detr --checkpoint finetuned.safetensors --image-size 448x798 (2 cameras)
        b = export_model("vit-small-detr", out=tmp_path / "ft", checkpoint="finetuned.safetensors",
                         options=ExportOptions(image_size=(448, 798), max_cameras=2)).bundle
    finally:
        os.chdir(cwd)
    assert b.manifest.graph().parity.passed and b.manifest.class_names == CLASSES
