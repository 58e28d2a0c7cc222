"""timm / dinov2 checkpoints that do not fit: the error names the layout and the first keys that differ."""

from __future__ import annotations

import pytest
import torch
from backbone_sources import dinov2_keys, random_weights, timm_vit_keys

from vitdeploy.errors import CheckpointError
from vitdeploy.models import load_backbone


def _raises(tmp_path, state) -> str:
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as info:
        load_backbone(tmp_path / "w.pth")
    return str(info.value)


def test_missing_block_key(tmp_path):
    state = random_weights(timm_vit_keys(dim=128, depth=2, patch=16, grid=4))
    del state["blocks.1.mlp.fc2.weight"]
    msg = _raises(tmp_path, state)
    assert "closest to the timm ViT / DeiT / DINOv2 (vit_*, deit_*, vit_*_dinov2) layout (timm)" in msg
    assert "missing: blocks.1.mlp.fc2.weight (128, 512)" in msg


def test_dinov2_giant_swiglu_is_named_unexpected(tmp_path):
    state = random_weights(dinov2_keys(dim=128, depth=1, grid=4))
    state["blocks.0.mlp.w12.weight"] = state.pop("blocks.0.mlp.fc1.weight")
    msg = _raises(tmp_path, state)
    assert "(dinov2) but does not fit it" in msg
    assert "missing: blocks.0.mlp.fc1.weight (512, 128)" in msg
    assert "unexpected: blocks.0.mlp.w12.weight (512, 128)" in msg


def test_position_embedding_of_no_grid(tmp_path):
    state = random_weights(timm_vit_keys(dim=128, depth=1, patch=16, grid=4))
    state["pos_embed"] = torch.zeros(1, 19, 128)
    assert "pos_embed has 19 positions" in _raises(tmp_path, state)


def test_two_backbones_in_one_file(tmp_path):
    state = random_weights(timm_vit_keys(dim=128, depth=1, patch=16, grid=4))
    both = {f"{who}.{k}": v for who in ("student", "teacher") for k, v in state.items()}
    assert "several timm backbones (under 'student.', 'teacher.')" in _raises(tmp_path, both)


def test_user_model_around_a_backbone_keeps_only_the_backbone(tmp_path):
    state = random_weights(timm_vit_keys(dim=128, depth=1, patch=16, grid=4, num_classes=0))
    wrapped = {**{f"module.backbone.{k}": v for k, v in state.items()}, "module.decoder.weight": torch.zeros(3)}
    torch.save({"state_dict": wrapped, "epoch": 3}, tmp_path / "w.pth")
    encoder = load_backbone(tmp_path / "w.pth")
    assert torch.equal(encoder.state_dict()["pos_embed"], state["pos_embed"])
