"""The checkpoint layouts of pretrained ViTs, each mapped onto vitdeploy's encoder.

A layout says which keys it holds (``vocabulary``), which of them an encoder does not use
(``unused``: classifier heads, the mask token of masked-image pretraining), how to read the
architecture from the tensors' shapes and, for Hugging Face, from config.json (``derive``), and
which source keys make up each parameter of vitdeploy's encoder (``source_keys``). Loading,
strict checking and conversion are written once against that (``backbones.load``).

Decisions:
- timm's ``vit_*`` and ``deit_*`` position embeddings cover the class token (and DeiT's
  distillation token); timm's DINOv2 *with registers* (``no_embed_class``) has the class token's
  position folded into ``cls_token``. Either is read as it is (``EncoderVariant.embedded_prefix``).
- DeiT's distillation token is kept, in the register slot, so the tokens match timm's
  ``forward_features``; its classifier ``head_dist`` is dropped like ``head``.
- DINOv2's ``mask_token`` is only used for masked-image pretraining: dropped.
- A timm checkpoint cannot say how many attention heads it has: ``embed_dim // 64`` unless the
  caller says (every ViT, DeiT and DINOv2 of timm and Meta has 64-dim heads).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from vitdeploy.errors import CheckpointError
from vitdeploy.models.encoder import EncoderConfig, EncoderVariant, PositionInterpolation

Shape = tuple[int, ...]
SourceKeys = list[tuple[str, Shape]]


class BackboneLayout(str, Enum):
    TIMM = "timm"
    DINOV2 = "dinov2"
    HF_VIT = "hf-vit"
    HF_DINOV2 = "hf-dinov2"


#: How each source resizes its position embedding for another input size (read from their code).
TIMM_INTERPOLATION = PositionInterpolation(antialias=True)  # timm resample_abs_pos_embed
DINOV2_INTERPOLATION = PositionInterpolation(offset=0.1)  # dinov2 interpolate_pos_encoding, no registers
DINOV2_REG_INTERPOLATION = PositionInterpolation(antialias=True)  # dinov2_vit*14_reg: offset 0, antialias
HF_INTERPOLATION = PositionInterpolation()  # transformers ViT and Dinov2 (5.x): size, no antialias
HF_REG_INTERPOLATION = PositionInterpolation(antialias=True)  # transformers Dinov2WithRegisters


@dataclass(frozen=True)
class LayoutSpec:
    layout: BackboneLayout
    describes: str  # for messages
    anchor: str  # the patch-embedding weight: marks the layout and gives the prefix of its keys
    examples: tuple[str, ...]  # keys every checkpoint of the layout has (for "unknown layout" messages)
    vocabulary: re.Pattern[str]  # every key the layout can hold, after ``normalize``
    unused: re.Pattern[str]  # keys it holds that an encoder does not use
    #: (tensors, HF config or None, num_heads or None) -> the encoder those tensors fit
    derive: Callable[[Mapping[str, torch.Tensor], Mapping[str, Any] | None, int | None], EncoderConfig]
    #: (vitdeploy encoder key, its shape, the checkpoint's keys) -> the source keys it is made of
    source_keys: Callable[[str, Shape, Container[str]], SourceKeys]
    normalize: Callable[[str], str] = str


def required_shape(state: Mapping[str, torch.Tensor], key: str, *, layout: str) -> Shape:
    if key not in state:
        raise CheckpointError(f"a {layout} checkpoint needs {key!r}, which this one lacks")
    return tuple(state[key].shape)


def patch_embed_size(state: Mapping[str, torch.Tensor], key: str, *, layout: str) -> tuple[int, int]:
    """-> (embed_dim, patch_size) from the (dim, 3, p, p) patch-embedding weight."""
    shape = required_shape(state, key, layout=layout)
    if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3]:
        raise CheckpointError(f"{key} has shape {shape}; vitdeploy's encoder takes (dim, 3, p, p): RGB, square patches")
    return shape[0], shape[2]


def block_count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    if found != set(range(len(found))):
        raise CheckpointError(f"the checkpoint's blocks are numbered {sorted(found)}; expected 0..{len(found) - 1}")
    return len(found)


def heads_for(embed_dim: int, num_heads: int | None) -> int:
    if num_heads is not None:
        return num_heads
    if embed_dim % 64:
        raise CheckpointError(f"cannot tell the number of attention heads of a {embed_dim}-dim ViT from its weights; "
                              "give num_heads")
    return embed_dim // 64


def square_side(n: int) -> int | None:
    side = math.isqrt(n) if n > 0 else 0
    return side if side and side * side == n else None


def mlp_ratio_of(state: Mapping[str, torch.Tensor], key: str, embed_dim: int) -> float:
    return state[key].shape[0] / embed_dim if key in state else 4.0


# --- timm and facebookresearch/dinov2: keys are vitdeploy's own, bar the register tokens ------------------

_BLOCK = r"(norm[12]\.(weight|bias)|attn\.(qkv|proj)\.(weight|bias)|ls[12]\.gamma|mlp\.fc[12]\.(weight|bias))"


def _timm_family(state: Mapping[str, torch.Tensor], *, num_heads: int | None, registers: int, layout: str,
                 embedded_prefix: Callable[[int, int], int | None], interpolation: PositionInterpolation
                 ) -> EncoderConfig:
    dim, patch = patch_embed_size(state, "patch_embed.proj.weight", layout=layout)
    class_token = "cls_token" in state
    positions = required_shape(state, "pos_embed", layout=layout)[1]
    prefix = int(class_token) + registers
    embedded = embedded_prefix(positions, prefix)
    side = square_side(positions - embedded) if embedded is not None else None
    if side is None:
        raise CheckpointError(f"pos_embed has {positions} positions: neither a square patch grid nor one plus "
                              f"the {prefix} class/register tokens; vitdeploy reads square-grid {layout} checkpoints")
    variant = EncoderVariant(register_tokens=registers, embedded_prefix=embedded,
                             layer_scale="blocks.0.ls1.gamma" in state, qkv_bias="blocks.0.attn.qkv.bias" in state,
                             final_norm="norm.weight" in state, interpolation=interpolation)
    return EncoderConfig(image_size=(side * patch, side * patch), patch_size=patch, embed_dim=dim,
                         depth=block_count(state, r"blocks\.(\d+)\."), num_heads=heads_for(dim, num_heads),
                         mlp_ratio=mlp_ratio_of(state, "blocks.0.mlp.fc1.weight", dim), class_token=class_token,
                         variant=variant)


def _timm_embedded(positions: int, prefix: int) -> int | None:
    """Original ViT/DeiT: the class (and distillation) token has a position; ``no_embed_class``: none has."""
    if prefix and square_side(positions - prefix):
        return prefix
    return 0 if square_side(positions) else None


def _derive_timm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None, num_heads: int | None
                 ) -> EncoderConfig:
    registers = state["reg_token"].shape[1] if "reg_token" in state else int("dist_token" in state)
    return _timm_family(state, num_heads=num_heads, registers=registers, layout="timm",
                        embedded_prefix=_timm_embedded, interpolation=TIMM_INTERPOLATION)


def _timm_source_keys(key: str, shape: Shape, present: Container[str]) -> SourceKeys:
    if key == "register_tokens":
        return [("dist_token" if "dist_token" in present else "reg_token", shape)]
    return [(key, shape)]


def _derive_dinov2(state: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None, num_heads: int | None
                   ) -> EncoderConfig:
    registers = state["register_tokens"].shape[1] if "register_tokens" in state else 0
    return _timm_family(state, num_heads=num_heads, registers=registers, layout="dinov2",
                        embedded_prefix=lambda positions, prefix: 1,  # pos_embed always covers the class token
                        interpolation=DINOV2_REG_INTERPOLATION if registers else DINOV2_INTERPOLATION)


def _unchunk(key: str) -> str:
    """dinov2 trained with ``block_chunks`` > 0 names blocks ``blocks.<chunk>.<index>.``; the index is global."""
    return re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", key)


TIMM = LayoutSpec(
    layout=BackboneLayout.TIMM, describes="timm ViT / DeiT / DINOv2 (vit_*, deit_*, vit_*_dinov2)",
    anchor="patch_embed.proj.weight",
    examples=("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight",
              "blocks.0.mlp.fc1.weight", "norm.weight"),
    vocabulary=re.compile(rf"cls_token|reg_token|dist_token|pos_embed|patch_embed\.proj\.(weight|bias)"
                          rf"|norm\.(weight|bias)|blocks\.\d+\.{_BLOCK}|(head|head_dist|fc_norm)\..+"),
    unused=re.compile(r"(head|head_dist|fc_norm)\..+"),
    derive=_derive_timm, source_keys=_timm_source_keys)

DINOV2 = LayoutSpec(
    layout=BackboneLayout.DINOV2, describes="facebookresearch/dinov2 (dinov2_vit*14, dinov2_vit*14_reg)",
    anchor="patch_embed.proj.weight",
    examples=("cls_token", "pos_embed", "mask_token", "patch_embed.proj.weight", "blocks.0.norm1.weight",
              "blocks.0.ls1.gamma", "norm.weight"),
    vocabulary=re.compile(rf"cls_token|register_tokens|mask_token|pos_embed|patch_embed\.proj\.(weight|bias)"
                          rf"|norm\.(weight|bias)|blocks\.\d+\.{_BLOCK}"),
    unused=re.compile(r"mask_token"),
    derive=_derive_dinov2, source_keys=lambda key, shape, present: [(key, shape)], normalize=_unchunk)
