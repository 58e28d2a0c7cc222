"""What a bundle keeps of a pretrained backbone: its record (layout, source, sha256, encoder) and the
normalisation its pretraining used, which the bundle's preprocessing must repeat.

Where the normalisation comes from, best first: the Hugging Face folder's preprocessor_config.json
(``image_mean``/``image_std``), a timm hub folder's config.json (``pretrained_cfg``), the layout's
convention (facebookresearch/dinov2: ImageNet's). A bare timm file says nothing: ImageNet's is
assumed, and ``Normalization.note`` says so (timm's augreg ViTs use 0.5/0.5: pass --mean/--std).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from vitdeploy.bundle.files import sha256_file
from vitdeploy.bundle.manifest import BackboneRecord
from vitdeploy.errors import CheckpointError
from vitdeploy.models.backbones.layouts import BackboneLayout
from vitdeploy.models.backbones.load import Backbone

Triple = tuple[float, float, float]
IMAGENET_MEAN: Triple = (0.485, 0.456, 0.406)
IMAGENET_STD: Triple = (0.229, 0.224, 0.225)
HALF: Triple = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Normalization:
    """``mean``/``std`` in 0..1 pixel units, RGB; ``source`` says where they came from; ``note`` is
    set when they are a guess the user should check."""

    mean: Triple
    std: Triple
    source: str
    note: str = ""


def backbone_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint file; of a folder: of its files' names and contents, in name order."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f"{file.name}|{sha256_file(file)}|".encode())
    return digest.hexdigest()


def backbone_record(backbone: Backbone) -> BackboneRecord:
    return BackboneRecord(layout=backbone.layout.value, source=backbone.source,
                          sha256=backbone_sha256(backbone.source), encoder=backbone.config.to_dict())


def _triple(value: object, *, what: str) -> Triple:
    if not isinstance(value, list | tuple) or len(value) != 3 or not all(isinstance(v, int | float) for v in value):
        raise CheckpointError(f"{what} should be three numbers (R, G, B), not {value!r}")
    return float(value[0]), float(value[1]), float(value[2])


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path} ({exc})") from exc
    return data if isinstance(data, dict) else {}


def backbone_normalization(path: str | Path, layout: BackboneLayout) -> Normalization:
    """The mean/std the backbone at ``path`` (of ``layout``) was pretrained with, or the best guess."""
    path = Path(path)
    preprocessor = path / "preprocessor_config.json"
    if path.is_dir() and preprocessor.is_file():
        data = _read_json(preprocessor)
        if "image_mean" in data and "image_std" in data:
            return Normalization(_triple(data["image_mean"], what=f"{preprocessor} image_mean"),
                                 _triple(data["image_std"], what=f"{preprocessor} image_std"),
                                 source="preprocessor_config.json")
    config = path / "config.json"
    if path.is_dir() and config.is_file():
        timm_cfg = _read_json(config).get("pretrained_cfg")
        if isinstance(timm_cfg, dict) and "mean" in timm_cfg and "std" in timm_cfg:
            return Normalization(_triple(timm_cfg["mean"], what=f"{config} pretrained_cfg.mean"),
                                 _triple(timm_cfg["std"], what=f"{config} pretrained_cfg.std"),
                                 source="timm pretrained_cfg")
    if layout is BackboneLayout.DINOV2:
        return Normalization(IMAGENET_MEAN, IMAGENET_STD, source="DINOv2 convention (ImageNet)")
    if layout is BackboneLayout.HF_DINOV2:
        return Normalization(IMAGENET_MEAN, IMAGENET_STD, source="transformers' Dinov2 default (ImageNet)",
                             note="no preprocessor_config.json beside the weights")
    if layout is BackboneLayout.HF_VIT:
        return Normalization(HALF, HALF, source="transformers' ViTImageProcessor default (0.5)",
                             note="no preprocessor_config.json beside the weights")
    return Normalization(IMAGENET_MEAN, IMAGENET_STD, source="assumed (ImageNet)",
                         note="a timm checkpoint does not record its normalisation; augreg ViTs use mean and std "
                              "0.5 (--mean 0.5,0.5,0.5 --std 0.5,0.5,0.5), DeiT and DINOv2 ImageNet's (the default)")
