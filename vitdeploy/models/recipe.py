"""Zoo models on a pretrained backbone, predicting the user's classes (DESIGN.md decision 8).

``build("vit-small-detr", backbone="dinov2_vits14_reg4.pth", classes=[...])`` gives a trainable
``PerceptionModel``: the backbone's encoder with its weights, and the card's head made for the
backbone's width, patch size and attention heads and for those classes (freshly initialised).

Fine-tuned, it goes back to `vitdeploy export` two ways: ``save_checkpoint(model, path)`` writes the
state dict with this recipe (card, classes, backbone description, normalisation) in the file's
metadata, so ``vitdeploy export MODEL --checkpoint FILE`` rebuilds it from the file alone; a plain
``torch.save(model.state_dict(), path)`` needs ``--backbone`` and ``--classes`` beside it, which
give the architecture the weights are loaded into.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from vitdeploy.bundle.head import HeadSpec
from vitdeploy.bundle.manifest import BackboneRecord, Manifest
from vitdeploy.errors import CheckpointError, VitDeployError
from vitdeploy.models.backbones.load import Backbone, read_backbone
from vitdeploy.models.backbones.record import Normalization, backbone_normalization, backbone_record
from vitdeploy.models.card import ModelCard
from vitdeploy.models.checkpoint import RECIPE_KEY
from vitdeploy.models.encoder import EncoderConfig, VisionTransformer
from vitdeploy.models.model import PerceptionModel
from vitdeploy.models.zoo import get_card, mask_stride_for


@dataclass(frozen=True)
class ModelRecipe:
    """How to build a zoo model: its ``card``, the ``class_names`` its head predicts, the
    ``backbone`` its encoder is (None: the zoo's own encoder) and that backbone's ``normalization``."""

    card: ModelCard
    class_names: tuple[str, ...]
    backbone: BackboneRecord | None = None
    normalization: Normalization | None = None

    @property
    def patch_size(self) -> int:
        return int(self.backbone.encoder["patch_size"]) if self.backbone else self.card.patch_size

    def head_spec(self) -> HeadSpec:
        """The card's head for these classes and this patch size (the manifest records it)."""
        config = dict(self.card.head.config)
        if "num_classes" in config and "tasks" not in config:
            config["num_classes"] = len(self.class_names)
        if "mask_stride" in config:
            config["mask_stride"] = mask_stride_for(self.patch_size, int(config["mask_stride"]))
        return replace(self.card.head, config=config)

    def build(self, *, fused_attention: bool = True, weights: Backbone | None = None) -> PerceptionModel:
        """The model, in eval mode. The encoder has ``weights`` (the backbone read from its file), or
        fresh ones for a checkpoint to fill; the head is fresh."""
        card = self.card
        if card.head_builder is None or card.encoder_builder is None:
            if self.backbone is not None:
                raise VitDeployError(f"{card.name} is not an encoder + head model; it takes no backbone")
            model = card.build(fused_attention=fused_attention)  # one piece (SAM), as the zoo makes it
            model.recipe = self
            return model.eval()
        encoder: VisionTransformer
        if self.backbone is None:
            encoder = card.encoder_builder(fused_attention=fused_attention)
        elif weights is not None:
            encoder = weights.build(fused_attention=fused_attention)
        else:
            encoder = EncoderConfig.from_dict(self.backbone.encoder).build(fused_attention=fused_attention)
        head = card.head_builder(encoder, num_classes=len(self.class_names), fused_attention=fused_attention)
        model = PerceptionModel(encoder=encoder, head=head, head_type=card.head.kind)
        model.recipe = self
        return model.eval()

    def to_json(self) -> str:
        return json.dumps({"model": self.card.name, "classes": list(self.class_names),
                           "backbone": asdict(self.backbone) if self.backbone else None,
                           "normalization": asdict(self.normalization) if self.normalization else None})

    @classmethod
    def from_json(cls, text: str, *, source: str) -> ModelRecipe:
        try:
            data = json.loads(text)
            backbone = BackboneRecord(**data["backbone"]) if data.get("backbone") else None
            if backbone is not None:
                EncoderConfig.from_dict(backbone.encoder)  # fails here, not later, when it is malformed
            norm = data.get("normalization")
            normalization = Normalization(**{**norm, "mean": tuple(norm["mean"]), "std": tuple(norm["std"])}) \
                if norm else None
            card = get_card(data["model"])
            if tuple(data["classes"]) != card.class_names:
                card = with_classes(card, data["classes"])
            return cls(card=card, class_names=card.class_names, backbone=backbone, normalization=normalization)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source} has a malformed {RECIPE_KEY} entry ({exc}); save it again with "
                                  "vitdeploy.models.save_checkpoint") from exc


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(c).strip() for c in classes)
    if not names or not all(names):
        raise VitDeployError(f"classes {list(classes)!r}: give one or more non-empty names, e.g. car,truck,bus")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise VitDeployError(f"classes {', '.join(repeated)} are listed twice; each class needs its own name")
    return names


def with_classes(card: ModelCard, classes: Sequence[str] | None) -> ModelCard:
    """``card`` predicting ``classes`` (None: its own); a card without classes (Task Attention, SAM) refuses."""
    if classes is None:
        return card
    config = card.head.config
    if card.head_builder is None or "num_classes" not in config or "tasks" in config:
        what = "tasks (use --tasks/--task-classes)" if "tasks" in config else "no class list to replace"
        raise VitDeployError(f"{card.name} has {what}; --classes applies to the cls, cait, detr and mask models")
    return replace(card, class_names=check_classes(classes))


def zoo_recipe(card: ModelCard, *, backbone: str | Path | Backbone | None = None,
               classes: Sequence[str] | None = None) -> tuple[ModelRecipe, Backbone | None]:
    """The recipe of ``card`` on ``backbone`` (a checkpoint path, or one already read) with ``classes``,
    and the backbone read (its weights go into ``ModelRecipe.build``)."""
    card = with_classes(card, classes)
    if backbone is None:
        return ModelRecipe(card=card, class_names=card.class_names), None
    if card.head_builder is None:
        raise VitDeployError(f"{card.name} is not an encoder + head model; it takes no backbone")
    read = backbone if isinstance(backbone, Backbone) else read_backbone(backbone)
    recipe = ModelRecipe(card=card, class_names=card.class_names, backbone=backbone_record(read),
                         normalization=backbone_normalization(read.source, read.layout))
    return recipe, read


def saved_recipe(name: str, metadata: dict[str, str], *, source: str, backbone: str | Path | None,
                 classes: Sequence[str] | None) -> ModelRecipe | None:
    """The recipe ``save_checkpoint`` stored in a checkpoint (None if it has none), checked against
    what the export was also given: the model ``name``, ``backbone`` and ``classes`` must agree."""
    if RECIPE_KEY not in metadata:
        return None
    recipe = ModelRecipe.from_json(metadata[RECIPE_KEY], source=source)
    if recipe.card.name != name:
        raise CheckpointError(f"{source} holds a {recipe.card.name} model, not {name}; export it as {recipe.card.name}")
    if classes is not None and check_classes(classes) != recipe.class_names:
        raise CheckpointError(f"{source} predicts {','.join(recipe.class_names)}; --classes "
                              f"{','.join(classes)} differs (drop --classes: the checkpoint knows them)")
    if backbone is not None:
        given = read_backbone(backbone).config.to_dict()
        saved = recipe.backbone.encoder if recipe.backbone else None
        if given != saved:
            raise CheckpointError(f"{source} was fine-tuned on another encoder than {backbone} "
                                  f"({'the zoo encoder' if saved is None else recipe.backbone.source}); drop "
                                  "--backbone: the checkpoint describes its own")
    return recipe


def manifest_recipe(manifest: Manifest) -> ModelRecipe:
    """The recipe of a bundle exported from the zoo: its card (with the bundle's tasks or classes) and
    its backbone record (the encoder is rebuilt from the record; the weights come from the checkpoint)."""
    from vitdeploy.models.tasks import card_with_tasks, tasks_from_config

    card = get_card(manifest.source.reference or manifest.model)
    config = manifest.head.config
    if "tasks" in config:
        card = card_with_tasks(card, tasks_from_config(config))
    elif tuple(manifest.class_names) != card.class_names:
        card = with_classes(card, manifest.class_names)
    return ModelRecipe(card=card, class_names=card.class_names, backbone=manifest.source.backbone)


def build(name: str, *, backbone: str | Path | Backbone | None = None, classes: Sequence[str] | None = None,
          fused_attention: bool = True) -> PerceptionModel:
    """Zoo model ``name`` on ``backbone`` (a timm, DINOv2 or Hugging Face checkpoint, with its weights;
    None: the zoo's encoder, fresh) predicting ``classes`` (None: the card's), in train mode.

    images (B, 3, H, W), H and W multiples of the backbone's patch size -> the head's raw outputs
    (``model.output_names``). Save it with ``save_checkpoint`` to export it from the file alone.
    """
    recipe, weights = zoo_recipe(get_card(name), backbone=backbone, classes=classes)
    return recipe.build(fused_attention=fused_attention, weights=weights).train()


def save_checkpoint(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s state dict to ``path`` (.safetensors, or .pt/.pth through ``torch.save``) with
    the recipe ``build`` gave it, so `vitdeploy export --checkpoint` needs nothing else."""
    recipe = getattr(model, "recipe", None)
    if not isinstance(recipe, ModelRecipe):
        raise VitDeployError(f"{type(model).__name__} was not made by vitdeploy.models.build; save its state dict "
                             "with torch.save and export with --backbone and --classes")
    path = Path(path)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    from vitdeploy.bundle.files import atomic_path

    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={RECIPE_KEY: recipe.to_json()})
        else:
            torch.save({"state_dict": state, RECIPE_KEY: recipe.to_json()}, tmp)
    return path
