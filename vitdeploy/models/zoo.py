"""The model zoo: named models as small card makers in a plain, literal dict.

``vit-{test,tiny,small,base,large}-{cls,cait,detr,mask,tab}``, ``sam-vit-{b,l,h}``, the tiny
``*-test-*`` variants that the default tests export in seconds, ``vit-{test,tiny}-rig3d`` (one
Perceiver-IO head over all cameras, 3D boxes in the ego frame), and ``demo-detr``, the detector
trained on vitdeploy's synthetic driving scenes and shipped with the package. Every name is
written out below, so searching for the name a user types finds its entry.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable

from torch import nn

from vitdeploy.bundle.head import BoxFormat, HeadSpec, ScoreActivation
from vitdeploy.errors import ModelNotFoundError
from vitdeploy.models.card import HeadBuilder, ModelCard
from vitdeploy.models.encoder import VisionTransformer
from vitdeploy.models.heads.cait import CaitHead
from vitdeploy.models.heads.cls import ClsHead
from vitdeploy.models.heads.detr import DetrHead, TwoStageDetrHead
from vitdeploy.models.heads.mask import MaskHead
from vitdeploy.models.heads.tab import TabHead, Task
from vitdeploy.models.model import PerceptionModel
from vitdeploy.models.rig_model import RIG3D_MODELS
from vitdeploy.models.sam.build import SAM_VARIANTS, build_sam
from vitdeploy.models.sizes import DRIVING_CLASSES, ENCODER_SIZES
from vitdeploy.models.tasks import task_class_names, tasks_config

#: The detector trained on the synthetic scenes (tools/train_demo.py) and shipped in the package.
DEMO_DETR = "demo-detr"
DEMO_IMAGE_SIZE = (192, 336)
DEMO_QUERIES = 30


def _vit(size: str, image_size: tuple[int, int], *, class_token: bool) -> Callable[..., VisionTransformer]:
    def build(*, fused_attention: bool = True) -> VisionTransformer:
        s = ENCODER_SIZES[size]
        return VisionTransformer(img_size=image_size, patch_size=16, embed_dim=s.embed_dim, depth=s.depth,
                                 num_heads=s.num_heads, class_token=class_token, fused_attention=fused_attention)
    return build


def encoder_heads(encoder: VisionTransformer) -> int:
    """The encoder's attention heads (the class-attention heads of CaiT and Task Attention use as many)."""
    return encoder.blocks[0].attn.num_heads


def _decoder_heads(size: str, encoder: VisionTransformer) -> int:
    """The size's decoder heads, or the encoder's where a backbone's width does not divide by them."""
    heads = ENCODER_SIZES[size].decoder_heads
    return heads if encoder.embed_dim % heads == 0 else encoder_heads(encoder)


def mask_stride_for(patch_size: int, wanted: int) -> int:
    """The mask stride nearest ``wanted`` that the pixel decoder can reach from ``patch_size``
    (patch / stride a power of two): 4 for patch 16, 7 for DINOv2's patch 14."""
    strides = [patch_size // 2**k for k in range(patch_size.bit_length()) if patch_size % 2**k == 0]
    return min(strides, key=lambda s: (abs(s - wanted), s))


def _cls_head(size: str) -> HeadBuilder:
    def build(encoder: VisionTransformer, *, num_classes: int, fused_attention: bool = True) -> nn.Module:
        return ClsHead(encoder.embed_dim, num_classes=num_classes)
    return build


def _cait_head(size: str) -> HeadBuilder:
    def build(encoder: VisionTransformer, *, num_classes: int, fused_attention: bool = True) -> nn.Module:
        return CaitHead(encoder.embed_dim, num_heads=encoder_heads(encoder), num_classes=num_classes,
                        fused_attention=fused_attention)
    return build


def _detr_head_builder(size: str, num_queries: int, *, two_stage: bool = False) -> HeadBuilder:
    head_class = TwoStageDetrHead if two_stage else DetrHead

    def build(encoder: VisionTransformer, *, num_classes: int, fused_attention: bool = True) -> nn.Module:
        return head_class(encoder.embed_dim, num_classes=num_classes, num_queries=num_queries,
                          num_layers=ENCODER_SIZES[size].decoder_layers, num_heads=_decoder_heads(size, encoder),
                          fused_attention=fused_attention)
    return build


def _mask_head(size: str, num_queries: int, mask_stride: int) -> HeadBuilder:
    def build(encoder: VisionTransformer, *, num_classes: int, fused_attention: bool = True) -> nn.Module:
        return MaskHead(encoder.embed_dim, num_classes=num_classes, patch_size=encoder.patch_size,
                        mask_stride=mask_stride_for(encoder.patch_size, mask_stride), num_queries=num_queries,
                        num_layers=ENCODER_SIZES[size].decoder_layers, num_heads=_decoder_heads(size, encoder),
                        fused_attention=fused_attention)
    return build


def _tab_head(size: str, tasks: tuple[Task, ...]) -> HeadBuilder:
    # ``tasks`` is a keyword so that an export can ask for another task list (models/tasks.py).
    def build(encoder: VisionTransformer, *, num_classes: int | None = None, fused_attention: bool = True,
              tasks: tuple[Task, ...] = tasks) -> nn.Module:
        return TabHead(encoder.embed_dim, num_heads=encoder_heads(encoder), tasks=tasks,
                       fused_attention=fused_attention)
    return build


def _composed(kind: str, encoder: Callable[..., VisionTransformer], head: HeadBuilder,
              num_classes: int | None) -> Callable[..., nn.Module]:
    """The card's ``builder``: its encoder and its head; ``head_options`` go to the head (``tasks``)."""
    def build(*, fused_attention: bool = True, **head_options) -> nn.Module:
        enc = encoder(fused_attention=fused_attention)
        return PerceptionModel(encoder=enc, head=head(enc, num_classes=num_classes, fused_attention=fused_attention,
                                                      **head_options), head_type=kind)
    return build


def _vit_card(name: str, kind: str, *, encoder: Callable[..., VisionTransformer], head_builder: HeadBuilder,
              num_classes: int | None, **card) -> ModelCard:
    return ModelCard(name=name, builder=_composed(kind, encoder, head_builder, num_classes), patch_size=16,
                     encoder_builder=encoder, head_builder=head_builder, **card)


def _imagenet_like(n: int) -> tuple[str, ...]:
    return tuple(f"class_{i}" for i in range(n))


def _what(size: str) -> str:
    return "tiny test model" if size == "test" else f"ViT-{size.capitalize()}/16"


def _cls_size(size: str) -> tuple[int, int]:
    return (64, 64) if size == "test" else (224, 224)


def _det_size(size: str) -> tuple[int, int]:
    return (64, 96) if size == "test" else (448, 800)  # automotive cameras are wide


def _classes(size: str) -> int:
    return 10 if size == "test" else 1000


def _queries(size: str) -> int:
    return 10 if size == "test" else 100


def _cls_card(name: str, size: str) -> ModelCard:
    n = _classes(size)
    return _vit_card(name, "cls", encoder=_vit(size, _cls_size(size), class_token=True), head_builder=_cls_head(size),
                     num_classes=n, head=HeadSpec("cls", config={"num_classes": n}), image_size=_cls_size(size),
                     description=f"{_what(size)}, CLS-token classifier", class_names=_imagenet_like(n))


def _cait_card(name: str, size: str) -> ModelCard:
    n = _classes(size)
    return _vit_card(name, "cait", encoder=_vit(size, _cls_size(size), class_token=False),
                     head_builder=_cait_head(size), num_classes=n,
                     head=HeadSpec("cait", config={"num_classes": n, "class_attention_layers": 2}),
                     image_size=_cls_size(size), description=f"{_what(size)}, CaiT class-attention (2 layers)",
                     class_names=_imagenet_like(n))


def _detr_head(queries: int) -> HeadSpec:
    return HeadSpec("detr", scores=ScoreActivation.SOFTMAX, boxes=BoxFormat(),
                    config={"num_classes": len(DRIVING_CLASSES), "num_queries": queries})


def _detr_card(name: str, size: str) -> ModelCard:
    q = _queries(size)
    return _vit_card(name, "detr", encoder=_vit(size, _det_size(size), class_token=False),
                     head_builder=_detr_head_builder(size, q), num_classes=len(DRIVING_CLASSES), head=_detr_head(q),
                     image_size=_det_size(size), description=f"{_what(size)}, DETR query decoder ({q} queries)",
                     class_names=DRIVING_CLASSES)


def _mask_card(name: str, size: str) -> ModelCard:
    q = _queries(size) // 2
    head = HeadSpec("mask", scores=ScoreActivation.SOFTMAX,
                    config={"num_classes": len(DRIVING_CLASSES), "num_queries": q, "mask_stride": 4})
    return _vit_card(name, "mask", encoder=_vit(size, _det_size(size), class_token=False),
                     head_builder=_mask_head(size, q, 4), num_classes=len(DRIVING_CLASSES), head=head,
                     image_size=_det_size(size), description=f"{_what(size)}, MaskFormer mask queries (stride 4)",
                     class_names=DRIVING_CLASSES)


def _tab_card(name: str, size: str) -> ModelCard:
    tasks = tuple(Task(name=f"task{i}", num_classes=n) for i, n in enumerate((4, 3, 5) if size == "test" else (10, 10, 10)))
    return _vit_card(name, "tab", encoder=_vit(size, _cls_size(size), class_token=False),
                     head_builder=_tab_head(size, tasks), num_classes=None,
                     head=HeadSpec("tab", config=tasks_config(tasks)), image_size=_cls_size(size),
                     description=f"{_what(size)}, Task Attention Block ({len(tasks)} task tokens, one classifier each)",
                     class_names=task_class_names(tasks))


def _demo_card(name: str) -> ModelCard:
    return _vit_card(
        name, "detr", encoder=_vit("tiny", DEMO_IMAGE_SIZE, class_token=False),
        head_builder=_detr_head_builder("tiny", DEMO_QUERIES, two_stage=True), num_classes=len(DRIVING_CLASSES),
        head=_detr_head(DEMO_QUERIES), image_size=DEMO_IMAGE_SIZE,
        description="ViT-Tiny/16 two-stage DETR trained on vitdeploy's synthetic driving scenes (weights shipped)",
        class_names=DRIVING_CLASSES, weights="demo-detr.safetensors")


def _rig3d_card(name: str) -> ModelCard:
    """A rig-level model of ``RIG3D_MODELS``: one graph over a whole frame set and its geometry."""
    spec = RIG3D_MODELS[name]
    head = HeadSpec("rig3d", scores=ScoreActivation.SOFTMAX,
                    config={"num_classes": spec.head.num_classes, "num_queries": spec.head.num_queries,
                            "max_cameras": spec.head.max_cameras})
    return ModelCard(name=name, head=head, image_size=spec.image_size, patch_size=spec.patch_size,
                     builder=spec.build, description=spec.description, class_names=spec.class_names)


def _sam_card(name: str, variant: str) -> ModelCard:
    config = SAM_VARIANTS[variant]
    grid = config.image_embedding_size
    what = "tiny test model" if variant == "test" else f"Segment Anything ViT-{variant[-1].upper()}"
    head = HeadSpec("sam", config={"prompt_embed_dim": config.prompt_embed_dim, "image_embedding_size": list(grid),
                                   "mask_input_size": [4 * grid[0], 4 * grid[1]],
                                   "multimask_outputs": config.num_multimask_outputs})
    return ModelCard(name=name, head=head, image_size=(config.image_size, config.image_size),
                     patch_size=config.patch_size, builder=functools.partial(build_sam, variant),
                     description=f"{what}: image encoder + point/box prompt decoder (official checkpoints load)")


ZOO: dict[str, ModelCard] = {card.name: card for card in (
    _cls_card("vit-test-cls", "test"),
    _cait_card("vit-test-cait", "test"),
    _detr_card("vit-test-detr", "test"),
    _mask_card("vit-test-mask", "test"),
    _tab_card("vit-test-tab", "test"),
    _cls_card("vit-tiny-cls", "tiny"),
    _cait_card("vit-tiny-cait", "tiny"),
    _detr_card("vit-tiny-detr", "tiny"),
    _mask_card("vit-tiny-mask", "tiny"),
    _tab_card("vit-tiny-tab", "tiny"),
    _cls_card("vit-small-cls", "small"),
    _cait_card("vit-small-cait", "small"),
    _detr_card("vit-small-detr", "small"),
    _mask_card("vit-small-mask", "small"),
    _tab_card("vit-small-tab", "small"),
    _cls_card("vit-base-cls", "base"),
    _cait_card("vit-base-cait", "base"),
    _detr_card("vit-base-detr", "base"),
    _mask_card("vit-base-mask", "base"),
    _tab_card("vit-base-tab", "base"),
    _cls_card("vit-large-cls", "large"),
    _cait_card("vit-large-cait", "large"),
    _detr_card("vit-large-detr", "large"),
    _mask_card("vit-large-mask", "large"),
    _tab_card("vit-large-tab", "large"),
    _demo_card("demo-detr"),
    _sam_card("sam-vit-b", "vit_b"),
    _sam_card("sam-vit-l", "vit_l"),
    _sam_card("sam-vit-h", "vit_h"),
    _sam_card("sam-vit-test", "test"),
    _rig3d_card("vit-test-rig3d"),
    _rig3d_card("vit-tiny-rig3d"),
)}


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
