"""Hugging Face transformers layouts: ``ViTModel``, ``Dinov2Model``, ``Dinov2WithRegistersModel``.

Keys are read as ``save_pretrained`` writes them and the Hub holds them
(``encoder.layer.N.attention.attention.query.weight`` ...); the names transformers 5 uses in memory
(``layers.N.attention.q_proj.weight`` ..., what ``torch.save(model.state_dict())`` writes) are
normalised to those first. Query, key and value are concatenated into vitdeploy's one ``qkv``.
The architecture comes from config.json where the checkpoint has one (a folder), else from the
shapes with transformers' defaults (LayerNorm eps 1e-12 for ViT, 1e-6 for DINOv2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from vitdeploy.errors import CheckpointError
from vitdeploy.models.backbones.layouts import (
    HF_INTERPOLATION,
    HF_REG_INTERPOLATION,
    BackboneLayout,
    LayoutSpec,
    Shape,
    SourceKeys,
    block_count,
    heads_for,
    mlp_ratio_of,
    patch_embed_size,
    required_shape,
    square_side,
)
from vitdeploy.models.encoder import EncoderConfig, EncoderVariant, PositionInterpolation

#: config.json ``model_type`` -> the layout it is saved in
MODEL_TYPES = {"vit": BackboneLayout.HF_VIT, "dinov2": BackboneLayout.HF_DINOV2,
               "dinov2_with_registers": BackboneLayout.HF_DINOV2}

_TOP = {"cls_token": "embeddings.cls_token", "register_tokens": "embeddings.register_tokens",
        "pos_embed": "embeddings.position_embeddings",
        "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
        "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
        "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
_VIT_BLOCK = {"norm1": "layernorm_before", "norm2": "layernorm_after", "mlp.fc1": "intermediate.dense",
              "mlp.fc2": "output.dense", "attn.proj": "attention.output.dense"}
_DINOV2_BLOCK = {"norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
                 "attn.proj": "attention.output.dense", "ls1": "layer_scale1", "ls2": "layer_scale2"}
_QKV = ("query", "key", "value")


def _source_keys(key: str, shape: Shape, block: Mapping[str, str]) -> SourceKeys:
    if key in _TOP:
        return [(_TOP[key], shape)]
    module, param = re.fullmatch(r"(blocks\.\d+\..+)\.(weight|bias|gamma)", key).groups()
    index, name = re.fullmatch(r"blocks\.(\d+)\.(.+)", module).groups()
    base = f"encoder.layer.{index}."
    if name == "attn.qkv":
        third = (shape[0] // 3, *shape[1:])
        return [(f"{base}attention.attention.{n}.{param}", third) for n in _QKV]
    if param == "gamma":
        return [(f"{base}{block[name]}.lambda1", shape)]
    return [(f"{base}{block[name]}.{param}", shape)]


def _v5_attention(key: str) -> str:
    key = re.sub(r"\.attention\.([qkv])_proj\.", lambda m: f".attention.attention.{_QKV['qkv'.index(m.group(1))]}.",
                 key)
    return key.replace(".attention.o_proj.", ".attention.output.dense.")


def _normalize_vit(key: str) -> str:
    if not key.startswith("layers."):
        return key
    key = _v5_attention(re.sub(r"^layers\.(\d+)\.", r"encoder.layer.\1.", key))
    return key.replace(".mlp.fc1.", ".intermediate.dense.").replace(".mlp.fc2.", ".output.dense.")


def _check_config(config: Mapping[str, Any], num_heads: int | None) -> None:
    if config.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"config.json has hidden_act {config['hidden_act']!r}; vitdeploy's encoder uses "
                              "exact GELU ('gelu')")
    if config.get("use_swiglu_ffn"):
        raise CheckpointError("config.json has use_swiglu_ffn (DINOv2 ViT-g); vitdeploy's encoder has a GELU MLP")
    if num_heads is not None and num_heads != config["num_attention_heads"]:
        raise CheckpointError(f"num_heads {num_heads} contradicts config.json's num_attention_heads "
                              f"{config['num_attention_heads']}")


def _pair(value: int | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _derive(state: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None, num_heads: int | None, *,
            layout: str, mlp_key: str, eps: float, registers: int, layer_scale: bool,
            interpolation: PositionInterpolation) -> EncoderConfig:
    """The encoder from config.json when there is one (what the weights must then fit), else from shapes."""
    variant_args = dict(register_tokens=registers, embedded_prefix=1, layer_scale=layer_scale,
                        interpolation=interpolation)
    if config is not None:
        _check_config(config, num_heads)
        dim = int(config["hidden_size"])
        patch = _pair(config["patch_size"])
        if patch[0] != patch[1]:
            raise CheckpointError(f"config.json has patch_size {patch}; vitdeploy's encoder takes square patches")
        ratio = config["intermediate_size"] / dim if "intermediate_size" in config else float(config["mlp_ratio"])
        return EncoderConfig(
            image_size=_pair(config["image_size"]), patch_size=patch[0], embed_dim=dim,
            depth=int(config["num_hidden_layers"]), num_heads=int(config["num_attention_heads"]), mlp_ratio=ratio,
            variant=EncoderVariant(qkv_bias=bool(config.get("qkv_bias", True)),
                                   norm_eps=float(config.get("layer_norm_eps", eps)), **variant_args))
    dim, patch = patch_embed_size(state, "embeddings.patch_embeddings.projection.weight", layout=layout)
    positions = required_shape(state, "embeddings.position_embeddings", layout=layout)[1]
    side = square_side(positions - 1)
    if side is None:
        raise CheckpointError(f"embeddings.position_embeddings has {positions} positions, not a square grid plus the "
                              "class token; give the folder with its config.json")
    return EncoderConfig(
        image_size=(side * patch, side * patch), patch_size=patch, embed_dim=dim,
        depth=block_count(state, r"encoder\.layer\.(\d+)\."), num_heads=heads_for(dim, num_heads),
        mlp_ratio=mlp_ratio_of(state, mlp_key, dim),
        variant=EncoderVariant(qkv_bias="encoder.layer.0.attention.attention.query.bias" in state, norm_eps=eps,
                               **variant_args))


def _derive_vit(state: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None, num_heads: int | None
                ) -> EncoderConfig:
    return _derive(state, config, num_heads, layout="hf-vit", mlp_key="encoder.layer.0.intermediate.dense.weight",
                   eps=1e-12, registers=0, layer_scale=False, interpolation=HF_INTERPOLATION)


def _derive_dinov2(state: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None, num_heads: int | None
                   ) -> EncoderConfig:
    if config is not None:
        with_registers = config.get("model_type") == "dinov2_with_registers"
        registers = int(config.get("num_register_tokens", 0)) if with_registers else 0
    else:
        with_registers = "embeddings.register_tokens" in state
        registers = state["embeddings.register_tokens"].shape[1] if with_registers else 0
    return _derive(state, config, num_heads, layout="hf-dinov2", mlp_key="encoder.layer.0.mlp.fc1.weight", eps=1e-6,
                   registers=registers, layer_scale=True,
                   interpolation=HF_REG_INTERPOLATION if with_registers else HF_INTERPOLATION)


_EMBEDDINGS = r"embeddings\.(cls_token|mask_token|register_tokens|position_embeddings|patch_embeddings\.projection\.(weight|bias))"
_ATTENTION = r"attention\.attention\.(query|key|value)|attention\.output\.dense"

HF_VIT = LayoutSpec(
    layout=BackboneLayout.HF_VIT, describes="Hugging Face ViTModel", anchor="embeddings.patch_embeddings.projection.weight",
    examples=("embeddings.cls_token", "embeddings.position_embeddings", "embeddings.patch_embeddings.projection.weight",
              "encoder.layer.0.layernorm_before.weight", "encoder.layer.0.attention.attention.query.weight",
              "encoder.layer.0.intermediate.dense.weight", "layernorm.weight"),
    vocabulary=re.compile(rf"{_EMBEDDINGS}|encoder\.layer\.\d+\.(layernorm_before|layernorm_after|{_ATTENTION}"
                          r"|intermediate\.dense|output\.dense)\.(weight|bias)|(layernorm|pooler\.dense)\.(weight|bias)"),
    unused=re.compile(r"embeddings\.mask_token|pooler\.dense\.(weight|bias)"),
    derive=_derive_vit, source_keys=lambda key, shape, present: _source_keys(key, shape, _VIT_BLOCK),
    normalize=_normalize_vit)

HF_DINOV2 = LayoutSpec(
    layout=BackboneLayout.HF_DINOV2, describes="Hugging Face Dinov2Model / Dinov2WithRegistersModel",
    anchor="embeddings.patch_embeddings.projection.weight",
    examples=("embeddings.cls_token", "embeddings.mask_token", "embeddings.position_embeddings",
              "embeddings.patch_embeddings.projection.weight", "encoder.layer.0.norm1.weight",
              "encoder.layer.0.layer_scale1.lambda1", "layernorm.weight"),
    vocabulary=re.compile(rf"{_EMBEDDINGS}|encoder\.layer\.\d+\.((norm[12]|{_ATTENTION}|mlp\.fc[12])\.(weight|bias)"
                          r"|layer_scale[12]\.lambda1)|layernorm\.(weight|bias)"),
    unused=re.compile(r"embeddings\.mask_token"),
    derive=_derive_dinov2, source_keys=lambda key, shape, present: _source_keys(key, shape, _DINOV2_BLOCK),
    normalize=_v5_attention)

