"""timm and facebookresearch/dinov2 checkpoints: every key used, tokens as the source computes them.

Keys and shapes are written out from timm's and dinov2's source (tests/models/backbone_sources.py).
The reference forward is transformers' (ViT, DeiT, Dinov2, Dinov2WithRegisters) on the same
weights: see that module for why those compute what timm and dinov2 compute. At other input sizes
the reference resizes the position embedding with a transcription of the source's own function
(timm ``resample_abs_pos_embed``; dinov2 ``interpolate_pos_encoding``).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import transformers
from backbone_sources import (
    dinov2_interpolate_pos_encoding,
    dinov2_keys,
    hf_model,
    random_weights,
    timm_resample_abs_pos_embed,
    timm_vit_keys,
    to_hf,
)
from safetensors.torch import save_file

from vitdeploy.models import load_backbone
from vitdeploy.models.backbones import BackboneLayout, read_backbone
from vitdeploy.models.encoder import PositionInterpolation

TIMM_MODELS = {  # timm's model name -> its checkpoint's keys (full size, as the hub files hold them)
    "vit_tiny_patch16_224": dict(dim=192, depth=12, patch=16, grid=14),
    "deit_small_patch16_224": dict(dim=384, depth=12, patch=16, grid=14),
    "deit_small_distilled_patch16_224": dict(dim=384, depth=12, patch=16, grid=14, distilled=True),
    "vit_small_patch14_reg4_dinov2": dict(dim=384, depth=12, patch=14, grid=37, num_classes=0, reg_tokens=4,
                                          no_embed_class=True, init_values=1e-5),
}
TOL = 1e-4


def _save(state, path):
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("name,suffix", [("vit_tiny_patch16_224", ".pth"), ("deit_small_patch16_224", ".safetensors"),
                                         ("deit_small_distilled_patch16_224", ".pth"),
                                         ("vit_small_patch14_reg4_dinov2", ".safetensors")])
def test_timm_checkpoint_loads_every_key(tmp_path, name, suffix):
    shapes = timm_vit_keys(**TIMM_MODELS[name])
    state = random_weights(shapes)
    backbone = read_backbone(_save(state, tmp_path / f"{name}{suffix}"))
    cfg = TIMM_MODELS[name]
    assert backbone.layout == BackboneLayout.TIMM
    assert (backbone.config.patch_size, backbone.config.embed_dim, backbone.config.depth) == (
        cfg["patch"], cfg["dim"], cfg["depth"])
    assert backbone.config.num_heads == cfg["dim"] // 64
    assert backbone.config.image_size == (cfg["patch"] * cfg["grid"],) * 2
    assert set(backbone.dropped) == {k for k in shapes if k.startswith("head")}
    encoder = backbone.build()
    own = encoder.state_dict()
    renamed = {"reg_token": "register_tokens", "dist_token": "register_tokens"}
    used = {renamed.get(k, k): v for k, v in state.items() if not k.startswith("head")}
    assert set(own) == set(used)
    assert all(torch.equal(own[k], v) for k, v in used.items())


def _timm_reference(name, state, depth, size, tmp_path):
    """transformers' forward on ``state`` at ``size``, the position embedding resampled as timm does
    when a model is created at another img_size (checkpoint_filter_fn -> resample_abs_pos_embed)."""
    cfg = TIMM_MODELS[name]
    prefix = 2 if cfg.get("distilled") else 1
    grid = (size[0] // cfg["patch"], size[1] // cfg["patch"])
    state = dict(state, pos_embed=timm_resample_abs_pos_embed(state["pos_embed"], grid, num_prefix_tokens=prefix))
    config_cls, model_cls = ((transformers.DeiTConfig, transformers.DeiTModel) if cfg.get("distilled") else
                             (transformers.ViTConfig, transformers.ViTModel))
    config = config_cls(hidden_size=cfg["dim"], num_hidden_layers=depth, num_attention_heads=cfg["dim"] // 64,
                        intermediate_size=4 * cfg["dim"], image_size=list(size), patch_size=cfg["patch"],
                        layer_norm_eps=1e-6)
    model = hf_model(model_cls, config, to_hf(state, depth=depth, vit_names=True), tmp_path / f"hf{size}")
    return lambda x: model(pixel_values=x).last_hidden_state


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "deit_small_distilled_patch16_224"])
def test_timm_vit_and_deit_match_reference(tmp_path, name):
    depth = 2  # the first two blocks: same layout, a fraction of the time
    state = random_weights(timm_vit_keys(**dict(TIMM_MODELS[name], depth=depth)))
    encoder = load_backbone(_save(state, tmp_path / "w.pth"))
    for size in [(224, 224), (160, 288)]:
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            err = (encoder(x) - _timm_reference(name, state, depth, size, tmp_path)(x)).abs().max().item()
        assert err < TOL, f"{name} at {size}: max abs {err:.2e}"


def _reg4_as_hf(state, depth):
    """timm's reg4 DINOv2 folds the class token's position into cls_token (no_embed_class); transformers'
    Dinov2WithRegisters adds a position to the class token: give it a zero one."""
    hf = to_hf(state, depth=depth, vit_names=False)
    pos = state["pos_embed"]
    hf["embeddings.position_embeddings"] = torch.cat([torch.zeros(1, 1, pos.shape[-1]), pos], dim=1)
    hf["embeddings.mask_token"] = torch.zeros(1, pos.shape[-1])
    return hf


def test_timm_dinov2_with_registers_matches_reference(tmp_path):
    """transformers' Dinov2WithRegisters resizes bicubic with antialias to the new grid, as timm does:
    its forward at another size is timm's there."""
    depth = 2
    cfg = dict(TIMM_MODELS["vit_small_patch14_reg4_dinov2"], depth=depth)
    state = random_weights(timm_vit_keys(**cfg))
    encoder = load_backbone(_save(state, tmp_path / "w.safetensors"))
    config = transformers.Dinov2WithRegistersConfig(hidden_size=384, num_hidden_layers=depth, num_attention_heads=6,
                                                    image_size=518, patch_size=14, num_register_tokens=4)
    model = hf_model(transformers.Dinov2WithRegistersModel, config, _reg4_as_hf(state, depth), tmp_path / "hf")
    for size in [(518, 518), (224, 392)]:
        x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            ref = model(pixel_values=x).last_hidden_state
            err = (encoder(x) - ref).abs().max().item()
            assert err < TOL, f"at {size}: max abs {err:.2e}"
            if size != (518, 518):  # the source's resizing matters: the zoo's plain bicubic is off
                encoder.variant = dataclasses.replace(encoder.variant, interpolation=PositionInterpolation())
                assert (encoder(x) - ref).abs().max().item() > 10 * TOL


def _dinov2_reference(model, state, x, registers):
    """transformers' Dinov2 embeddings, blocks and norm, with the position embedding resized by
    dinov2's own ``interpolate_pos_encoding`` (offset 0.1 without registers; size + antialias with)."""
    emb = model.embeddings
    pos = dinov2_interpolate_pos_encoding(state["pos_embed"], x.shape[-2], x.shape[-1],
                                          offset=0.0 if registers else 0.1, antialias=bool(registers))
    tokens = torch.cat([emb.cls_token.expand(x.shape[0], -1, -1), emb.patch_embeddings(x)], dim=1) + pos
    if registers:
        tokens = torch.cat([tokens[:, :1], emb.register_tokens.expand(x.shape[0], -1, -1), tokens[:, 1:]], dim=1)
    return model.layernorm(model.encoder(tokens).last_hidden_state)


@pytest.mark.parametrize("registers", [0, 4])
def test_official_dinov2_matches_reference(tmp_path, registers):
    depth = 2
    state = random_weights(dinov2_keys(dim=384, depth=depth, grid=37, registers=registers))
    backbone = read_backbone(_save(state, tmp_path / "dinov2_vits14.pth"))
    assert backbone.layout == BackboneLayout.DINOV2 and backbone.dropped == ("mask_token",)
    assert backbone.config.variant.register_tokens == registers and backbone.config.variant.layer_scale
    encoder = backbone.build()
    cls, config_cls = ((transformers.Dinov2WithRegistersModel, transformers.Dinov2WithRegistersConfig) if registers
                       else (transformers.Dinov2Model, transformers.Dinov2Config))
    extra = {"num_register_tokens": registers} if registers else {}
    config = config_cls(hidden_size=384, num_hidden_layers=depth, num_attention_heads=6, image_size=518,
                        patch_size=14, **extra)
    model = hf_model(cls, config, to_hf(state, depth=depth, vit_names=False), tmp_path / "hf")
    for size in [(518, 518), (224, 392)]:
        x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            if size == (518, 518):  # native: transformers' own forward, untouched
                assert (model(pixel_values=x).last_hidden_state - _dinov2_reference(model, state, x, registers)
                        ).abs().max() < TOL
            err = (encoder(x) - _dinov2_reference(model, state, x, registers)).abs().max().item()
        assert err < TOL, f"registers={registers} at {size}: max abs {err:.2e}"


def test_dinov2_trained_with_block_chunks_loads(tmp_path):
    """dinov2's training code chunks blocks (``blocks.<chunk>.<index>.``; index global)."""
    state = random_weights(dinov2_keys(dim=128, depth=4, grid=4))
    chunked = {(k.replace("blocks.", f"blocks.{int(k.split('.')[1]) // 2}.", 1) if k.startswith("blocks.") else k): v
               for k, v in state.items()}
    encoder = load_backbone(_save(chunked, tmp_path / "w.pth"))
    assert torch.equal(encoder.state_dict()["blocks.3.mlp.fc2.weight"], state["blocks.3.mlp.fc2.weight"])


def test_timm_average_pooled_model_has_no_final_norm(tmp_path):
    """timm models with ``global_pool='avg'`` norm the pooled feature (``fc_norm``), not the tokens
    (``norm`` is Identity): their tokens are the last block's, as transformers' last hidden state
    before its final layernorm."""
    state = random_weights(timm_vit_keys(dim=128, depth=2, patch=16, grid=4))
    state["fc_norm.weight"], state["fc_norm.bias"] = state.pop("norm.weight"), state.pop("norm.bias")
    backbone = read_backbone(_save(state, tmp_path / "w.pth"))
    assert not backbone.config.variant.final_norm and "fc_norm.weight" in backbone.dropped
    config = transformers.ViTConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                                    image_size=64, patch_size=16, layer_norm_eps=1e-6)
    hf_state = to_hf(dict(state, **{"norm.weight": torch.ones(128), "norm.bias": torch.zeros(128)}), depth=2,
                     vit_names=True)
    model = hf_model(transformers.ViTModel, config, hf_state, tmp_path / "hf")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(pixel_values=x, output_hidden_states=True).hidden_states[-1]
        assert (backbone.build()(x) - ref).abs().max() < TOL
