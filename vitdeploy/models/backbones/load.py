"""``load_backbone``: a pretrained ViT checkpoint of a known layout -> vitdeploy's encoder, same weights.

The file is read safely (safetensors, or ``torch.load(weights_only=True)``), its layout detected
from its keys (and config.json in a Hugging Face folder), its architecture read from the tensors'
shapes, and every key checked: a checkpoint loads only when each parameter of the encoder comes
from it with the right shape and each of its keys is either used or one the layout names unused.
Otherwise the error names the closest layout and the first keys that differ.

Keys under a prefix (``module.``, ``backbone.``, ``vit.`` of ``ViTForImageClassification`` ...)
are found by the patch-embedding weight; the keys outside it (a user's head) are dropped.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vitdeploy.errors import CheckpointError
from vitdeploy.models.backbones.hf_layouts import HF_DINOV2, HF_VIT, MODEL_TYPES
from vitdeploy.models.backbones.layouts import DINOV2, TIMM, BackboneLayout, LayoutSpec, Shape
from vitdeploy.models.checkpoint import load_state_dict, read_state_dict
from vitdeploy.models.encoder import EncoderConfig, VisionTransformer

#: In detection order: on a tie (a DINOv2 checkpoint without its mask token) timm wins.
LAYOUTS: tuple[LayoutSpec, ...] = (TIMM, DINOV2, HF_VIT, HF_DINOV2)
_SHOW = 5
_HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class Backbone:
    """A pretrained ViT read from a checkpoint: its layout, the encoder it fits, its weights in vitdeploy's keys."""

    layout: BackboneLayout
    source: str
    config: EncoderConfig
    state: dict[str, torch.Tensor] = field(repr=False)  # float32, keys of ``VisionTransformer``
    dropped: tuple[str, ...] = ()  # checkpoint keys an encoder does not use (heads, mask token, other modules)

    def build(self, *, fused_attention: bool = True) -> VisionTransformer:
        """The encoder with these weights, in eval mode."""
        encoder = self.config.build(fused_attention=fused_attention)
        load_state_dict(encoder, self.state, source=self.source)
        return encoder.eval()


def load_backbone(path: str | Path, *, num_heads: int | None = None, fused_attention: bool = True
                  ) -> VisionTransformer:
    """The encoder of a timm, facebookresearch/dinov2 or Hugging Face ViT checkpoint, with its weights.

    ``path``: a .pth/.pt/.bin or .safetensors file, or a Hugging Face folder (config.json and
    model.safetensors or pytorch_model.bin, possibly sharded). ``num_heads``: attention heads where
    the checkpoint cannot say (no config.json); default ``embed_dim // 64``. The encoder's
    ``forward`` returns the source's final-norm tokens (class, registers, patches), and resizes the
    position embedding for other input sizes the way the source does.
    """
    return read_backbone(path, num_heads=num_heads).build(fused_attention=fused_attention)


def read_backbone(path: str | Path, *, num_heads: int | None = None) -> Backbone:
    """Read and check a checkpoint without building the encoder (``load_backbone`` builds it)."""
    path = Path(path)
    tensors, config = _read(path)
    allowed = LAYOUTS
    if config is not None and config.get("model_type") in MODEL_TYPES:
        allowed = tuple(s for s in LAYOUTS if s.layout == MODEL_TYPES[config["model_type"]])
    else:
        config = None  # not a transformers config (timm's hub folders have their own config.json)
    scoped = {spec.layout: _scope(tensors, spec, source=str(path)) for spec in allowed}
    ranked = sorted(allowed, key=lambda s: -_score(scoped[s.layout][0], s))
    if _score(scoped[ranked[0].layout][0], ranked[0]) == 0:
        raise _unknown_layout(tensors, allowed, source=str(path))
    first_error: CheckpointError | None = None
    for spec in ranked:
        state, outside = scoped[spec.layout]
        if not _score(state, spec):
            break
        try:
            return _convert(spec, state, config, num_heads=num_heads, source=str(path), outside=outside)
        except CheckpointError as exc:
            first_error = first_error or exc
    raise first_error


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """-> (tensors, the folder's config.json or None)."""
    if not path.is_dir():
        return read_state_dict(path), None
    config = None
    if (path / "config.json").is_file():
        try:
            config = json.loads((path / "config.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {path / 'config.json'} ({exc})") from exc
    for name in _HF_WEIGHTS:
        if (path / name).is_file():
            return read_state_dict(path / name), config
        index = path / f"{name}.index.json"
        if index.is_file():
            return _read_shards(index), config
    raise CheckpointError(f"{path} is a folder without {' or '.join(_HF_WEIGHTS)} (or their .index.json); "
                          "give a Hugging Face model folder or a checkpoint file")


def _read_shards(index: Path) -> dict[str, torch.Tensor]:
    try:
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, json.JSONDecodeError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"cannot read the shard index {index} ({exc})") from exc
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        tensors.update(read_state_dict(index.parent / name))
    return tensors


def _scope(tensors: Mapping[str, torch.Tensor], spec: LayoutSpec, *, source: str
           ) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """-> (the keys under the layout's prefix, prefix removed and normalised; the keys outside it)."""
    anchor = spec.anchor
    prefixes = sorted({k[: -len(anchor)] for k in tensors
                       if k == anchor or (k.endswith("." + anchor))})
    if len(prefixes) > 1:
        raise CheckpointError(f"{source} holds several {spec.layout.value} backbones (under "
                              f"{', '.join(repr(p) for p in prefixes)}); save the one to load on its own")
    prefix = prefixes[0] if prefixes else ""
    inside = {spec.normalize(k[len(prefix):]): v for k, v in tensors.items() if k.startswith(prefix)}
    return inside, tuple(k for k in tensors if not k.startswith(prefix))


def _score(state: Mapping[str, torch.Tensor], spec: LayoutSpec) -> int:
    return sum(1 for k in state if spec.vocabulary.fullmatch(k))


def _convert(spec: LayoutSpec, state: dict[str, torch.Tensor], hf_config: dict[str, Any] | None, *,
             num_heads: int | None, source: str, outside: tuple[str, ...]) -> Backbone:
    # An empty tensor carries no weights (a Dinov2WithRegisters with 0 registers has a (1, 0, dim) one).
    unused = [k for k, v in state.items() if spec.unused.fullmatch(k) or v.numel() == 0]
    present = {k: v for k, v in state.items() if k not in unused}
    try:
        config = spec.derive(present, hf_config, num_heads)
        with torch.device("meta"):
            own = config.build().state_dict()
    except (CheckpointError, ValueError) as exc:
        raise CheckpointError(f"{source} looks like a {spec.describes} checkpoint but {exc}") from exc
    parts = {key: spec.source_keys(key, tuple(t.shape), present) for key, t in own.items()}
    _check_keys(spec, present, dict(kv for srcs in parts.values() for kv in srcs), source=source)
    converted = {key: torch.cat([present[k] for k, _ in srcs]) if len(srcs) > 1 else present[srcs[0][0]]
                 for key, srcs in parts.items()}
    return Backbone(layout=spec.layout, source=source, config=config,
                    state={k: v.to(torch.float32).contiguous() for k, v in converted.items()},
                    dropped=tuple(unused) + outside)


def _listed(items: list[str]) -> str:
    more = f", ... ({len(items)} in all)" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def _check_keys(spec: LayoutSpec, present: Mapping[str, torch.Tensor], expected: Mapping[str, Shape], *,
                source: str) -> None:
    missing = [f"{k} {expected[k]}" for k in expected if k not in present]
    unexpected = [f"{k} {tuple(v.shape)}" for k, v in present.items() if k not in expected]
    shapes = [f"{k} {tuple(present[k].shape)}, expected {expected[k]}"
              for k in expected if k in present and tuple(present[k].shape) != expected[k]]
    parts = [f"{label}: {_listed(items)}" for label, items in
             (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if items]
    if parts:
        raise CheckpointError(f"{source} is closest to the {spec.describes} layout ({spec.layout.value}) but does "
                              f"not fit it; {'; '.join(parts)}")


def _unknown_layout(tensors: Mapping[str, torch.Tensor], allowed: tuple[LayoutSpec, ...], *, source: str
                    ) -> CheckpointError:
    keys = list(tensors)[:50]

    def likeness(spec: LayoutSpec) -> float:
        return sum(max(difflib.SequenceMatcher(None, k, e).ratio() for e in spec.examples) for k in keys)

    closest = max(allowed, key=likeness)
    first = [f"{k} {tuple(tensors[k].shape)}" for k in list(tensors)[:_SHOW]]
    names = ", ".join(s.layout.value for s in allowed)
    return CheckpointError(
        f"{source} is not a ViT checkpoint in a layout vitdeploy reads ({names}); closest is {closest.describes} "
        f"({closest.layout.value}); missing: {_listed(list(closest.examples))}; unexpected: "
        f"{', '.join(first) or 'none, the checkpoint is empty'}")
