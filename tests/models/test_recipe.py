"""`vitdeploy.models.build`: a zoo head on a pretrained backbone with the user's classes, trainable;
``save_checkpoint`` keeps the recipe with the weights; the backbone's normalisation is found."""

from __future__ import annotations

import json

import pytest
import torch
from backbone_sources import dinov2_keys, random_weights, timm_vit_keys

from vitdeploy.errors import VitDeployError
from vitdeploy.models import build, load_backbone, save_checkpoint
from vitdeploy.models.backbones import BackboneLayout
from vitdeploy.models.backbones.record import IMAGENET_MEAN, backbone_normalization
from vitdeploy.models.checkpoint import RECIPE_KEY, read_checkpoint
from vitdeploy.models.recipe import ModelRecipe

CLASSES = ["car", "truck", "bus"]
SIZE = (42, 70)  # multiples of DINOv2's patch 14, not the checkpoint's 56x56


@pytest.fixture(scope="module")
def dinov2(tmp_path_factory):
    path = tmp_path_factory.mktemp("backbone") / "dinov2_vits14_reg4.pth"
    torch.save(random_weights(dinov2_keys(dim=128, depth=2, grid=4, registers=4)), path)
    return path


@pytest.mark.parametrize(("name", "shapes"), [
    ("vit-test-cls", {"logits": (2, 3)}),
    ("vit-test-cait", {"logits": (2, 3)}),
    ("vit-test-detr", {"logits": (2, 10, 4), "boxes": (2, 10, 4)}),
    ("vit-test-mask", {"logits": (2, 5, 4), "masks": (2, 5, 6, 10)}),  # patch 14: mask stride 7, not 4
])
def test_each_head_goes_on_the_backbone_with_the_users_classes(dinov2, name, shapes):
    model = build(name, backbone=dinov2, classes=CLASSES)
    assert model.training and all(p.requires_grad for p in model.parameters())
    reference = load_backbone(dinov2).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.encoder.state_dict().items())  # pretrained weights
    out = model(torch.rand(2, 3, *SIZE))
    assert {k: tuple(v.shape) for k, v in out.items()} == shapes
    sum(v.sum() for v in out.values()).backward()
    assert model.encoder.blocks[0].attn.qkv.weight.grad is not None  # the backbone trains too
    assert model.recipe.head_spec().config["num_classes"] == 3


def test_mask_stride_follows_the_patch_size(dinov2):
    assert build("vit-test-mask", backbone=dinov2, classes=CLASSES).recipe.head_spec().config["mask_stride"] == 7
    assert build("vit-test-mask", classes=CLASSES).recipe.head_spec().config["mask_stride"] == 4


def test_classes_without_a_backbone_keep_the_zoo_encoder():
    model = build("vit-test-detr", classes=["a", "b"])
    assert model(torch.rand(1, 3, 64, 96))["logits"].shape == (1, 10, 3)


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("vit-test-tab", {"classes": ["a"]}, "vit-test-tab has tasks \\(use --tasks/--task-classes\\)"),
    ("sam-vit-test", {"classes": ["a"]}, "sam-vit-test has no class list to replace"),
    ("vit-test-detr", {"classes": ["a", "a"]}, "classes a are listed twice"),
    ("vit-test-detr", {"classes": []}, "give one or more non-empty names"),
])
def test_what_has_no_classes_refuses_them(name, kwargs, message):
    with pytest.raises(VitDeployError, match=message):
        build(name, **kwargs)


def test_sam_takes_no_backbone(dinov2):
    with pytest.raises(VitDeployError, match="sam-vit-test is not an encoder \\+ head model; it takes no backbone"):
        build("sam-vit-test", backbone=dinov2)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_save_checkpoint_keeps_the_recipe_beside_the_weights(dinov2, tmp_path, suffix):
    model = build("vit-test-detr", backbone=dinov2, classes=CLASSES)
    path = save_checkpoint(model, tmp_path / f"ft{suffix}")
    state, metadata = read_checkpoint(path)
    assert set(state) == set(model.state_dict())
    recipe = ModelRecipe.from_json(metadata[RECIPE_KEY], source=str(path))
    assert recipe.card.name == "vit-test-detr" and recipe.class_names == tuple(CLASSES)
    assert recipe.backbone.layout == "dinov2" and recipe.backbone.encoder["patch_size"] == 14
    assert recipe.normalization.mean == IMAGENET_MEAN
    with pytest.raises(VitDeployError, match="was not made by vitdeploy.models.build"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "x.pt")


def test_normalisation_comes_from_the_backbone_folder_or_its_convention(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.5, 0.5],
                                                                 "image_std": [0.25, 0.25, 0.25]}))
    norm = backbone_normalization(folder, BackboneLayout.HF_DINOV2)
    assert (norm.mean, norm.std, norm.note) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "")
    timm_folder = tmp_path / "timm"
    timm_folder.mkdir()
    (timm_folder / "config.json").write_text(json.dumps({"pretrained_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3}}))
    assert backbone_normalization(timm_folder, BackboneLayout.TIMM).source == "timm pretrained_cfg"
    assert backbone_normalization(tmp_path / "x.pth", BackboneLayout.DINOV2).mean == IMAGENET_MEAN
    bare = backbone_normalization(tmp_path / "x.pth", BackboneLayout.TIMM)
    assert bare.mean == IMAGENET_MEAN and "augreg ViTs use mean and std 0.5" in bare.note


def test_a_timm_backbone_builds_too(tmp_path):
    path = tmp_path / "deit.pth"
    torch.save(random_weights(timm_vit_keys(dim=128, depth=2, patch=16, grid=4)), path)
    model = build("vit-test-detr", backbone=path, classes=CLASSES)
    assert model(torch.rand(1, 3, 64, 96))["logits"].shape == (1, 10, 4)
