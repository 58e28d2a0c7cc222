"""The model zoo: named configurations as small builder functions in a plain dict.

``vit-{tiny,small,base,large}-{cls,cait,detr,mask,tab}``, ``sam-vit-{b,l,h}``, tiny ``*-test-*``
variants that the default tests export in seconds, and ``demo-detr``, the detector trained on
vitdeploy's synthetic driving scenes and shipped with the package.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vitdeploy.errors import ModelNotFoundError
from vitdeploy.models.encoder import VisionTransformer
from vitdeploy.models.heads.cait import CaitHead
from vitdeploy.models.heads.cls import ClsHead
from vitdeploy.models.heads.detr import DetrHead, TwoStageDetrHead
from vitdeploy.models.heads.mask import MaskHead
from vitdeploy.models.heads.tab import TabHead, Task
from vitdeploy.models.model import PerceptionModel
from vitdeploy.models.tasks import task_class_names, tasks_config

#: Classes of vitdeploy's synthetic driving scenes; the default class set of detection/mask models.
DRIVING_CLASSES = ("car", "truck", "pedestrian", "cyclist", "traffic_cone", "traffic_light")

#: The detector trained on the synthetic scenes (tools/train_demo.py) and shipped in the package.
DEMO_DETR = "demo-detr"
DEMO_IMAGE_SIZE = (192, 336)
DEMO_QUERIES = 30


@dataclass(frozen=True)
class EncoderSize:
    embed_dim: int
    depth: int
    num_heads: int
    decoder_heads: int
    decoder_layers: int


ENCODER_SIZES: dict[str, EncoderSize] = {
    "test": EncoderSize(embed_dim=64, depth=2, num_heads=2, decoder_heads=2, decoder_layers=2),
    "tiny": EncoderSize(embed_dim=192, depth=12, num_heads=3, decoder_heads=6, decoder_layers=3),
    "small": EncoderSize(embed_dim=384, depth=12, num_heads=6, decoder_heads=8, decoder_layers=6),
    "base": EncoderSize(embed_dim=768, depth=12, num_heads=12, decoder_heads=8, decoder_layers=6),
    "large": EncoderSize(embed_dim=1024, depth=24, num_heads=16, decoder_heads=8, decoder_layers=6),
}


@dataclass(frozen=True)
class ModelCard:
    """What the zoo knows about a named model: enough to build it and to fill a manifest."""

    name: str
    head: str  # cls | cait | detr | mask | sam | tab
    image_size: tuple[int, int]  # default (H, W) input, pixels
    patch_size: int
    builder: Callable[..., nn.Module]
    description: str
    class_names: tuple[str, ...] = ()
    head_config: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # file shipped in vitdeploy/models/weights/, loaded by default

    def build(self, *, fused_attention: bool = True) -> nn.Module:
        return self.builder(fused_attention=fused_attention)

    def parameter_count(self) -> int:
        with torch.device("meta"):
            model = self.build()
        return sum(p.numel() for p in model.parameters())


def _vit(size: str, image_size: tuple[int, int], *, class_token: bool, fused_attention: bool) -> VisionTransformer:
    s = ENCODER_SIZES[size]
    return VisionTransformer(img_size=image_size, patch_size=16, embed_dim=s.embed_dim, depth=s.depth,
                             num_heads=s.num_heads, class_token=class_token, fused_attention=fused_attention)


def _cls_builder(size: str, image_size: tuple[int, int], num_classes: int) -> Callable[..., nn.Module]:
    def build(*, fused_attention: bool = True) -> nn.Module:
        enc = _vit(size, image_size, class_token=True, fused_attention=fused_attention)
        return PerceptionModel(encoder=enc, head=ClsHead(enc.embed_dim, num_classes=num_classes), head_type="cls")
    return build


def _cait_builder(size: str, image_size: tuple[int, int], num_classes: int) -> Callable[..., nn.Module]:
    def build(*, fused_attention: bool = True) -> nn.Module:
        enc = _vit(size, image_size, class_token=False, fused_attention=fused_attention)
        head = CaitHead(enc.embed_dim, num_heads=ENCODER_SIZES[size].num_heads, num_classes=num_classes,
                        fused_attention=fused_attention)
        return PerceptionModel(encoder=enc, head=head, head_type="cait")
    return build


def _detr_builder(size: str, image_size: tuple[int, int], num_classes: int, num_queries: int, *,
                  two_stage: bool = False) -> Callable[..., nn.Module]:
    head_class = TwoStageDetrHead if two_stage else DetrHead

    def build(*, fused_attention: bool = True) -> nn.Module:
        s = ENCODER_SIZES[size]
        enc = _vit(size, image_size, class_token=False, fused_attention=fused_attention)
        head = head_class(enc.embed_dim, num_classes=num_classes, num_queries=num_queries, num_layers=s.decoder_layers,
                        num_heads=s.decoder_heads, fused_attention=fused_attention)
        return PerceptionModel(encoder=enc, head=head, head_type="detr")
    return build


def _mask_builder(size: str, image_size: tuple[int, int], num_classes: int, num_queries: int,
                  mask_stride: int) -> Callable[..., nn.Module]:
    def build(*, fused_attention: bool = True) -> nn.Module:
        s = ENCODER_SIZES[size]
        enc = _vit(size, image_size, class_token=False, fused_attention=fused_attention)
        head = MaskHead(enc.embed_dim, num_classes=num_classes, patch_size=16, mask_stride=mask_stride,
                        num_queries=num_queries, num_layers=s.decoder_layers, num_heads=s.decoder_heads,
                        fused_attention=fused_attention)
        return PerceptionModel(encoder=enc, head=head, head_type="mask")
    return build


def _tab_builder(size: str, image_size: tuple[int, int], tasks: tuple[Task, ...]) -> Callable[..., nn.Module]:
    # ``tasks`` is a keyword so that an export can ask for another task list (models/tasks.py).
    def build(*, fused_attention: bool = True, tasks: tuple[Task, ...] = tasks) -> nn.Module:
        enc = _vit(size, image_size, class_token=False, fused_attention=fused_attention)
        head = TabHead(enc.embed_dim, num_heads=ENCODER_SIZES[size].num_heads, tasks=tasks,
                       fused_attention=fused_attention)
        return PerceptionModel(encoder=enc, head=head, head_type="tab")
    return build


def _imagenet_like(n: int) -> tuple[str, ...]:
    return tuple(f"class_{i}" for i in range(n))


def _register_vits(zoo: dict[str, ModelCard]) -> None:
    automotive = (448, 800)
    for size in ("test", "tiny", "small", "base", "large"):
        test = size == "test"
        cls_size = (64, 64) if test else (224, 224)
        det_size = (64, 96) if test else automotive
        n_cls = 10 if test else 1000
        queries = 10 if test else 100
        what = "tiny test model" if test else f"ViT-{size.capitalize()}/16"
        zoo[f"vit-{size}-cls"] = ModelCard(
            name=f"vit-{size}-cls", head="cls", image_size=cls_size, patch_size=16,
            builder=_cls_builder(size, cls_size, n_cls), description=f"{what}, CLS-token classifier",
            class_names=_imagenet_like(n_cls), head_config={"num_classes": n_cls})
        zoo[f"vit-{size}-cait"] = ModelCard(
            name=f"vit-{size}-cait", head="cait", image_size=cls_size, patch_size=16,
            builder=_cait_builder(size, cls_size, n_cls),
            description=f"{what}, CaiT class-attention (2 layers)",
            class_names=_imagenet_like(n_cls), head_config={"num_classes": n_cls, "class_attention_layers": 2})
        zoo[f"vit-{size}-detr"] = ModelCard(
            name=f"vit-{size}-detr", head="detr", image_size=det_size, patch_size=16,
            builder=_detr_builder(size, det_size, len(DRIVING_CLASSES), queries),
            description=f"{what}, DETR query decoder ({queries} queries)",
            class_names=DRIVING_CLASSES,
            head_config={"num_classes": len(DRIVING_CLASSES), "num_queries": queries, "box_format": "cxcywh_normalized"})
        zoo[f"vit-{size}-mask"] = ModelCard(
            name=f"vit-{size}-mask", head="mask", image_size=det_size, patch_size=16,
            builder=_mask_builder(size, det_size, len(DRIVING_CLASSES), queries // 2, 4),
            description=f"{what}, MaskFormer mask queries (stride 4)",
            class_names=DRIVING_CLASSES,
            head_config={"num_classes": len(DRIVING_CLASSES), "num_queries": queries // 2, "mask_stride": 4})
        tasks = tuple(Task(name=f"task{i}", num_classes=n) for i, n in enumerate((4, 3, 5) if test else (10, 10, 10)))
        zoo[f"vit-{size}-tab"] = ModelCard(
            name=f"vit-{size}-tab", head="tab", image_size=cls_size, patch_size=16,
            builder=_tab_builder(size, cls_size, tasks),
            description=f"{what}, Task Attention Block ({len(tasks)} task tokens, one classifier each)",
            class_names=task_class_names(tasks), head_config=tasks_config(tasks))


def _register_demo(zoo: dict[str, ModelCard]) -> None:
    zoo[DEMO_DETR] = ModelCard(
        name=DEMO_DETR, head="detr", image_size=DEMO_IMAGE_SIZE, patch_size=16,
        builder=_detr_builder("tiny", DEMO_IMAGE_SIZE, len(DRIVING_CLASSES), DEMO_QUERIES, two_stage=True),
        description="ViT-Tiny/16 two-stage DETR trained on vitdeploy's synthetic driving scenes (weights shipped)",
        class_names=DRIVING_CLASSES,
        head_config={"num_classes": len(DRIVING_CLASSES), "num_queries": DEMO_QUERIES, "box_format": "cxcywh_normalized"},
        weights="demo-detr.safetensors")


def _build_zoo() -> dict[str, ModelCard]:
    zoo: dict[str, ModelCard] = {}
    _register_vits(zoo)
    _register_demo(zoo)
    from vitdeploy.models.sam.build import register_sam  # here, not at the top: sam.build imports ModelCard
    register_sam(zoo)
    return zoo


ZOO: dict[str, ModelCard] = _build_zoo()


def get_card(name: str) -> ModelCard:
    card = ZOO.get(name)
    if card is None:
        close = difflib.get_close_matches(name, list(ZOO), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else "run `vitdeploy models` to list them"
        raise ModelNotFoundError(f"unknown model {name!r}; {hint}")
    return card


def build_model(name: str, *, fused_attention: bool = True) -> nn.Module:
    """Build a zoo model with fresh weights (or its shipped weights, for ``demo-*`` entries)."""
    card = get_card(name)
    model = card.build(fused_attention=fused_attention)
    if card.weights:
        from vitdeploy.models.checkpoint import load_shipped_weights

        load_shipped_weights(model, card.weights)
    return model.eval()


def build_exported(name: str, *, checkpoint: str | None, image_size: tuple[int, int]) -> nn.Module:
    """The PyTorch model behind an exported bundle: zoo model ``name`` with the weights the export
    used (``checkpoint`` as the manifest records it: a path, ``shipped:<file>``, or None for random
    weights) and its position embedding set for ``image_size``."""
    from vitdeploy.models.checkpoint import load_checkpoint, load_shipped_weights

    model = get_card(name).build()
    if checkpoint is not None and checkpoint.startswith("shipped:"):
        load_shipped_weights(model, checkpoint.split(":", 1)[1])
    elif checkpoint is not None:
        load_checkpoint(model, checkpoint)
    model.encoder.set_grid(model.encoder.grid_for(*image_size))
    return model.eval()

