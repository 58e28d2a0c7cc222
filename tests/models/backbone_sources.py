"""Checkpoints as timm, facebookresearch/dinov2 and Hugging Face write them, for the backbone tests.

timm and dinov2 cannot be installed here (timm needs torchvision), so their state-dict keys and
shapes are written out from their source, read at:
- timm ``timm/models/vision_transformer.py`` (``VisionTransformer.__init__``, ``Block``: ``norm1``,
  ``attn.qkv``/``attn.proj`` of ``timm/layers/attention.py``, ``ls1``/``ls2`` ``LayerScale.gamma``
  when ``init_values``, ``norm2``, ``mlp.fc1``/``fc2``; ``cls_token``, ``reg_token``, ``pos_embed`` of
  ``num_patches`` (+ prefix tokens unless ``no_embed_class``), ``norm``, ``head``) and
  ``timm/models/deit.py`` (``VisionTransformerDistilled``: ``dist_token``, pos_embed + 2, ``head_dist``);
- dinov2 ``dinov2/models/vision_transformer.py`` (``DinoVisionTransformer``: ``cls_token``,
  ``pos_embed`` of patches + 1, ``register_tokens``, ``mask_token`` (1, dim), ``blocks`` of
  ``NestedTensorBlock`` with ``ls1.gamma``/``ls2.gamma``, ``norm``; ``head`` is Identity).

Their reference forward is transformers' own, on the same weights moved to its layout: timm's
ViT/DeiT blocks compute what transformers' ViT/DeiT layers compute (pre-norm, one attention with
64-dim heads, exact GELU), and DINOv2's what transformers' Dinov2 layers compute; the moving of
keys follows transformers' own conversion scripts (``convert_vit_timm_to_pytorch.py``,
``convert_dinov2_to_hf.py``: qkv split into query, key, value in that order).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

Shapes = dict[str, tuple[int, ...]]


def timm_vit_keys(*, dim: int, depth: int, patch: int, grid: int, num_classes: int = 1000, reg_tokens: int = 0,
                  no_embed_class: bool = False, init_values: float | None = None, distilled: bool = False) -> Shapes:
    """The state dict of timm's VisionTransformer (or VisionTransformerDistilled), keys and shapes."""
    prefix = 1 + reg_tokens + int(distilled)
    keys: Shapes = {"cls_token": (1, 1, dim)}
    if reg_tokens:
        keys["reg_token"] = (1, reg_tokens, dim)
    keys["pos_embed"] = (1, grid * grid + (0 if no_embed_class else prefix), dim)
    if distilled:
        keys["dist_token"] = (1, 1, dim)
    keys["patch_embed.proj.weight"] = (dim, 3, patch, patch)
    keys["patch_embed.proj.bias"] = (dim,)
    for i in range(depth):
        b = f"blocks.{i}."
        keys.update({b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
                     b + "attn.qkv.weight": (3 * dim, dim), b + "attn.qkv.bias": (3 * dim,),
                     b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,)})
        if init_values:
            keys[b + "ls1.gamma"] = (dim,)
        keys.update({b + "norm2.weight": (dim,), b + "norm2.bias": (dim,),
                     b + "mlp.fc1.weight": (4 * dim, dim), b + "mlp.fc1.bias": (4 * dim,),
                     b + "mlp.fc2.weight": (dim, 4 * dim), b + "mlp.fc2.bias": (dim,)})
        if init_values:
            keys[b + "ls2.gamma"] = (dim,)
    keys.update({"norm.weight": (dim,), "norm.bias": (dim,)})
    if num_classes:
        keys.update({"head.weight": (num_classes, dim), "head.bias": (num_classes,)})
        if distilled:
            keys.update({"head_dist.weight": (num_classes, dim), "head_dist.bias": (num_classes,)})
    return keys


def dinov2_keys(*, dim: int, depth: int, grid: int, registers: int = 0) -> Shapes:
    """The state dict of dinov2's DinoVisionTransformer (hub models: patch 14, block_chunks 0, init_values 1)."""
    keys: Shapes = {"cls_token": (1, 1, dim), "pos_embed": (1, grid * grid + 1, dim)}
    if registers:
        keys["register_tokens"] = (1, registers, dim)
    keys["mask_token"] = (1, dim)
    timm_blocks = timm_vit_keys(dim=dim, depth=depth, patch=14, grid=grid, num_classes=0, init_values=1.0)
    keys.update({k: v for k, v in timm_blocks.items() if k.startswith(("patch_embed.", "blocks.", "norm."))})
    return keys


def random_weights(shapes: Shapes, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights far enough from an init that every parameter changes the tokens (norm weights near 1)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        t = torch.randn(shape, generator=g)
        is_norm_weight = key.endswith("weight") and len(shape) == 1
        out[key] = 1 + 0.1 * t if is_norm_weight else (0.5 * t if "token" in key or "pos" in key else 0.05 * t)
    return out


# --- moving weights to transformers' layout (Hub names, as save_pretrained writes them) --------------------

def _hf_blocks(state: dict[str, torch.Tensor], *, depth: int, vit_names: bool) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(depth):
        s, d = f"blocks.{i}.", f"encoder.layer.{i}."
        q, k, v = state[s + "attn.qkv.weight"].chunk(3)
        qb, kb, vb = state[s + "attn.qkv.bias"].chunk(3)
        for name, w, b in (("query", q, qb), ("key", k, kb), ("value", v, vb)):
            out[f"{d}attention.attention.{name}.weight"], out[f"{d}attention.attention.{name}.bias"] = w, b
        names = ({"norm1": "layernorm_before", "norm2": "layernorm_after", "mlp.fc1": "intermediate.dense",
                  "mlp.fc2": "output.dense"} if vit_names else
                 {"norm1": "norm1", "norm2": "norm2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"})
        names["attn.proj"] = "attention.output.dense"
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                out[f"{d}{theirs}.{p}"] = state[f"{s}{ours}.{p}"]
        for n in (1, 2):
            if f"{s}ls{n}.gamma" in state:
                out[f"{d}layer_scale{n}.lambda1"] = state[f"{s}ls{n}.gamma"]
    return out


def to_hf(state: dict[str, torch.Tensor], *, depth: int, vit_names: bool) -> dict[str, torch.Tensor]:
    """timm/dinov2 keys -> transformers' ViT (``vit_names``) or Dinov2 keys; register/distillation tokens
    become transformers' ``register_tokens``/``distillation_token``."""
    out = {"embeddings.cls_token": state["cls_token"], "embeddings.position_embeddings": state["pos_embed"],
           "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
           "layernorm.weight": state["norm.weight"], "layernorm.bias": state["norm.bias"]}
    for ours, theirs in (("reg_token", "embeddings.register_tokens"), ("register_tokens", "embeddings.register_tokens"),
                         ("dist_token", "embeddings.distillation_token"), ("mask_token", "embeddings.mask_token")):
        if ours in state:
            out[theirs] = state[ours]
    out.update(_hf_blocks(state, depth=depth, vit_names=vit_names))
    return out


def hf_model(cls, config, state: dict[str, torch.Tensor], folder: Path):
    """transformers model ``cls`` with ``config`` and the Hub-named ``state``, loaded the way a user loads one."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    return cls.from_pretrained(str(folder)).eval()


# --- the sources' own position-embedding resizing, transcribed ---------------------------------------------

def timm_resample_abs_pos_embed(pos: torch.Tensor, new_size: tuple[int, int], *, num_prefix_tokens: int
                                ) -> torch.Tensor:
    """timm/layers/pos_embed.py ``resample_abs_pos_embed`` (bicubic, antialias=True, square old grid)."""
    prefix, grid = pos[:, :num_prefix_tokens], pos[:, num_prefix_tokens:]
    side = int(math.sqrt(grid.shape[1]))
    grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=new_size, mode="bicubic", antialias=True)
    return torch.cat([prefix, grid.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])], dim=1)


def dinov2_interpolate_pos_encoding(pos: torch.Tensor, height: int, width: int, *, patch_size: int = 14,
                                    offset: float = 0.1, antialias: bool = False) -> torch.Tensor:
    """dinov2/models/vision_transformer.py ``interpolate_pos_encoding`` (its ``w``, ``h`` are height, width)."""
    n = pos.shape[1] - 1
    side = int(math.sqrt(n))
    h0, w0 = height // patch_size, width // patch_size
    if h0 * w0 == n and height == width:
        return pos
    kwargs = {"scale_factor": ((h0 + offset) / side, (w0 + offset) / side)} if offset else {"size": (h0, w0)}
    grid = F.interpolate(pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2).float(), mode="bicubic",
                         antialias=antialias, **kwargs)
    assert grid.shape[-2:] == (h0, w0)
    return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, pos.shape[-1])], dim=1)
