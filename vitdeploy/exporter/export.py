"""`vitdeploy export`: a zoo model (on a pretrained backbone, with the user's classes, with a
checkpoint) -> a bundle with proven parity. A user's factory is ``exporter.factory_export``; both
end in ``export_prepared``.

Every graph is exported to a hidden temporary file, linted and checked for parity against
PyTorch; only when all graphs pass are they renamed into place and the manifest written. A
failed export leaves the folder as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

import vitdeploy
from vitdeploy.bundle import MANIFEST_NAME, Bundle, atomic_path, ensure_writable_dir, sha256_file
from vitdeploy.bundle.manifest import (
    Graph,
    Manifest,
    ModelSource,
    Precision,
    Preprocessing,
    SourceKind,
    Variant,
)
from vitdeploy.errors import BundleError, CheckpointError, ExportError, ParityError
from vitdeploy.exporter.fused_preprocess import preprocessing_nodes
from vitdeploy.exporter.graphs import GraphSpec
from vitdeploy.exporter.lint import lint_model
from vitdeploy.exporter.onnx_export import export_graph
from vitdeploy.exporter.parity import FP32_ATOL, FP32_RTOL, check_parity
from vitdeploy.exporter.perception_graphs import perception_graph_spec
from vitdeploy.heads import Head, make_head
from vitdeploy.models.backbones.load import Backbone
from vitdeploy.models.backbones.record import Normalization
from vitdeploy.models.card import ModelCard
from vitdeploy.models.checkpoint import load_state_dict, read_checkpoint, state_sha256
from vitdeploy.models.recipe import ModelRecipe, saved_recipe, zoo_recipe
from vitdeploy.models.tasks import prepare_task_export
from vitdeploy.models.zoo import get_card

MAX_CAMERAS_LIMIT = 64
#: The camera count a per-camera graph takes when the user does not say (a rig-level model's
#: default is its camera slots).
DEFAULT_MAX_CAMERAS = 8


@dataclass(frozen=True)
class ExportOptions:
    """How ``export_model`` exports; the defaults are `vitdeploy export`'s.

    ``image_size``: model input (H, W) pixels, multiples of the patch size (None: the card's);
    ``max_cameras``: the largest camera count (batch) the graph takes (None: ``DEFAULT_MAX_CAMERAS``,
    or a rig-level model's camera slots); ``opset``: ONNX opset;
    ``atol``/``rtol``: the parity tolerance against PyTorch; ``tasks``/``task_classes``: the task
    list of a Task Attention (``*-tab``) model (``vitdeploy.models.tasks``); ``fuse_preprocess``:
    resize and normalisation in the graph, which then takes raw uint8 frames of ``source_size``
    (H, W) in ``source_channel_order`` (RGB or BGR). ``backbone``: a timm, DINOv2 or Hugging Face
    checkpoint the zoo model's encoder is (``vitdeploy.models.build``); ``classes``: the class names
    its head predicts (None: the card's); ``mean``/``std``: the input normalisation, 0..1 pixel
    units, RGB (None: the backbone's, else ImageNet's).
    """

    image_size: tuple[int, int] | None = None
    max_cameras: int | None = None
    opset: int = 18
    atol: float = FP32_ATOL
    rtol: float = FP32_RTOL
    tasks: int | None = None
    task_classes: Sequence[int] | None = None
    fuse_preprocess: bool = False
    source_size: tuple[int, int] | None = None
    source_channel_order: str = "RGB"
    backbone: str | Path | None = None
    classes: Sequence[str] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def cameras_for(self, head: Head) -> int:
        """The largest camera count the graph of ``head``'s model takes, as asked or by default."""
        if self.max_cameras is not None:
            return self.max_cameras
        return head.camera_slots or DEFAULT_MAX_CAMERAS


@dataclass
class ExportResult:
    bundle: Bundle
    seconds: float
    files: dict[str, int]  # file name -> bytes
    notes: list[str] = field(default_factory=list)  # what the user should check (a guessed normalisation)


@dataclass
class Prepared:
    """A PyTorch model ready to export and what the manifest records of it. ``graphs`` makes its
    graph specs from (preprocessing, max cameras); ``normalization``: the mean/std its training
    used, where known; ``patch_size``: None where vitdeploy cannot know it (a factory's model)."""

    name: str
    model: torch.nn.Module
    head: Head
    class_names: tuple[str, ...]
    patch_size: int | None
    source: ModelSource
    checkpoint: str | None
    graphs: Callable[[Preprocessing, int], list[GraphSpec]]
    normalization: Normalization | None = None


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def default_preprocessing(head: Head, model: torch.nn.Module, image_size: tuple[int, int]) -> Preprocessing:
    if head.prompted:
        from vitdeploy.exporter.sam_graphs import sam_preprocessing

        return sam_preprocessing(model)
    return Preprocessing(image_size=image_size, resize="stretch")


def _normalised(spec: Preprocessing, prepared: Prepared, options: ExportOptions) -> tuple[Preprocessing, list[str]]:
    """``spec`` with the mean/std of ``options``, else of the model's training; and a note to check
    a guessed one."""
    norm = prepared.normalization
    given = {name: value for name, value in (("mean", options.mean), ("std", options.std)) if value is not None}
    for name, value in given.items():
        if len(value) != 3 or (name == "std" and min(value) <= 0):
            raise ExportError(f"--{name} {','.join(map(str, value))}: give three numbers (R, G, B) in 0..1 pixel "
                              f"units{', all above 0' if name == 'std' else ''}, e.g. 0.485,0.456,0.406")
    if norm is not None:
        spec = dataclasses.replace(spec, mean=norm.mean, std=norm.std)
    spec = dataclasses.replace(spec, **{k: tuple(float(x) for x in v) for k, v in given.items()})
    notes = [f"normalisation {norm.source}: {norm.note}"] if norm is not None and norm.note and len(given) < 2 else []
    return spec, notes


def validate_export(name: str, patch_size: int | None, head: Head, image_size: tuple[int, int], max_cameras: int,
                    native_size: tuple[int, int]) -> None:
    h, w = image_size
    p = patch_size or 1
    if min(h, w) < 1:
        raise ExportError(f"image size {h}x{w} must be positive")
    if h % p or w % p:
        near = f"{max(p, round(h / p) * p)}x{max(p, round(w / p) * p)}"
        raise ExportError(f"image size {h}x{w} is not a multiple of the patch size {p} of {name}; try {near}")
    if head.prompted and tuple(image_size) != tuple(native_size):
        ch, cw = native_size
        raise ExportError(f"{name} takes {ch}x{cw} inputs (its relative positions are fixed); drop --image-size")
    if not 1 <= max_cameras <= MAX_CAMERAS_LIMIT:
        raise ExportError(f"--max-cameras {max_cameras} is out of range; use 1..{MAX_CAMERAS_LIMIT}")
    slots = head.camera_slots
    if slots is not None and max_cameras > slots:
        raise ExportError(f"--max-cameras {max_cameras}: {name} answers for a rig of at most {slots} cameras (one "
                          f"learned embedding per camera position); use 1..{slots}")


def _fused(head: Head, spec: Preprocessing, *, source_size: tuple[int, int] | None,
           channel_order: str) -> Preprocessing:
    if head.prompted:
        raise ExportError("--fuse-preprocess is for single-graph models; SAM's prompts need the CPU-side geometry")
    if source_size is None:
        raise ExportError("--fuse-preprocess needs --source-size HxW: the size of the frames the cameras deliver")
    if min(source_size) < 1:
        raise ExportError(f"--source-size {source_size[0]}x{source_size[1]} must be positive")
    if channel_order.upper() not in ("RGB", "BGR"):
        raise ExportError(f"--channel-order {channel_order!r} must be RGB or BGR")
    return dataclasses.replace(spec, fused=True, source_size=tuple(source_size),
                               source_channel_order=channel_order.upper())


def _previous_files(out: Path) -> set[str]:
    """The files the bundle already in ``out`` (if any) names in its manifest."""
    if not (out / MANIFEST_NAME).is_file():
        return set()
    try:
        return Bundle.open(out).manifest.referenced_files()
    except BundleError:
        return set()  # an unreadable manifest names nothing we can safely remove


def graph_specs(head: Head, model: torch.nn.Module, *, image_size: tuple[int, int], max_cameras: int,
                preprocessing: Preprocessing) -> list[GraphSpec]:
    if head.prompted:
        from vitdeploy.exporter.sam_graphs import sam_graph_specs

        return sam_graph_specs(model, head=head, max_cameras=max_cameras)
    if not head.per_camera:
        from vitdeploy.exporter.rig_graphs import rig_graph_spec

        return [rig_graph_spec(model, head=head, image_size=image_size, max_cameras=max_cameras,
                               preprocessing=preprocessing)]
    return [perception_graph_spec(model, head=head, image_size=image_size, max_cameras=max_cameras,
                                  preprocessing=preprocessing)]


def _zoo_recipe(card: ModelCard, *, checkpoint: str | Path | None, options: ExportOptions
                ) -> tuple[ModelRecipe, Backbone | None, dict | None]:
    """-> (the recipe: from the checkpoint's metadata, else from ``--backbone``/``--classes``; the
    backbone read, whose weights the model gets when there is no checkpoint; the checkpoint's state)."""
    state = None
    if checkpoint is not None:
        state, metadata = read_checkpoint(checkpoint)
        recipe = saved_recipe(card.name, metadata, source=str(checkpoint), backbone=options.backbone,
                              classes=options.classes)
        if recipe is not None:
            return recipe, None, state
    recipe, weights = zoo_recipe(card, backbone=options.backbone, classes=options.classes)
    return recipe, weights, state


def _zoo_model(card: ModelCard, recipe: ModelRecipe, weights: Backbone | None, *, checkpoint: str | Path | None,
               state: dict | None, say: Callable[[str], None]) -> torch.nn.Module:
    """The recipe's model with the export's weights: the checkpoint's ``state`` (a ``*-tab`` one grown to
    the asked tasks), the backbone's and a fresh head, the shipped weights, or random ones."""
    say(f"building {card.name}" + (f" on {recipe.backbone.source}" if recipe.backbone else ""))
    # The explicit matmul-softmax attention is what the ONNX graph (and quantization) should see.
    model = recipe.build(fused_attention=False, weights=weights if state is None else None)
    if state is not None:
        say(f"loading {checkpoint}")
        try:
            load_state_dict(model, state, source=str(checkpoint))
        except CheckpointError as exc:
            if recipe.backbone is not None or any(not k.startswith(("encoder.", "head.")) for k in state):
                raise
            raise CheckpointError(f"{exc} (fine-tuned on a pretrained backbone? give --backbone and --classes, or "
                                  "save it with vitdeploy.models.save_checkpoint)") from exc
    elif card.weights and recipe.backbone is None:
        from vitdeploy.models.checkpoint import load_shipped_weights

        load_shipped_weights(model, card.weights)
    return model


def _export_graphs(specs: list[GraphSpec], *, out: Path, options: ExportOptions, preprocessing: Preprocessing,
                   say: Callable[[str], None]) -> list[Graph]:
    """Export, lint and parity-check every graph into hidden files, then rename them all into
    ``out``; a graph failing parity raises before any file is in place."""
    opset = options.opset
    graphs: list[Graph] = []
    with contextlib.ExitStack() as stack:
        staged = []
        for spec in specs:
            tmp = stack.enter_context(atomic_path(out / spec.file))
            say(f"exporting graph {spec.name} (opset {opset})")
            onnx_model = export_graph(spec, tmp, opset=opset)
            say(f"checking parity of {spec.name} against PyTorch")
            parity = check_parity(spec, tmp, atol=options.atol, rtol=options.rtol)
            if not parity.passed:
                worst = parity.worst()
                detail = ", ".join(f"{k}: max abs {v.max_abs:.2e}" for k, v in worst.items())
                raise ParityError(
                    f"ONNX Runtime disagrees with PyTorch on graph {spec.name!r} ({detail}; tolerance "
                    f"atol {options.atol:g} + rtol {options.rtol:g}); nothing was written to {out}"
                )
            graphs.append(Graph(name=spec.name, inputs=spec.inputs, outputs=spec.outputs, parity=parity,
                                lint=lint_model(onnx_model)))
            if preprocessing.fused:
                preprocessing.fused_nodes = preprocessing_nodes(onnx_model)
            staged.append((spec, tmp))
        # All graphs passed: the atomic_path contexts rename each file into place on exit.
        say("writing bundle")
    for graph, (spec, _tmp) in zip(graphs, staged, strict=True):
        path = out / spec.file
        graph.variants = [Variant(precision=Precision.FP32, file=spec.file, sha256=sha256_file(path),
                                  created_at=now_iso())]
    return graphs


def export_model(name: str, *, out: str | Path, checkpoint: str | Path | None = None,
                 options: ExportOptions = ExportOptions(),
                 progress: Callable[[str], None] | None = None) -> ExportResult:
    """Export zoo model ``name`` (with ``checkpoint``'s weights; default the shipped, the backbone's or
    random ones) into the bundle folder ``out``, as ``options`` say.

    A checkpoint written by ``vitdeploy.models.save_checkpoint`` brings its own backbone and classes.
    A checkpoint of a Task Attention model with fewer tasks than ``options.tasks`` is grown to
    them, its own tasks kept bit-for-bit (``vitdeploy.models.tasks``).
    """
    say = progress or (lambda _msg: None)
    card = get_card(name)
    task_export = prepare_task_export(card, count=options.tasks, classes=options.task_classes, checkpoint=checkpoint)
    if task_export is not None:
        card = task_export.card
    recipe, weights, state = _zoo_recipe(card, checkpoint=checkpoint, options=options)
    if task_export is not None and task_export.state is not None:
        state = task_export.state
    image_size = tuple(options.image_size or card.image_size)
    head = make_head(recipe.head_spec(), class_names=recipe.class_names, image_size=image_size)
    cameras = options.cameras_for(head)
    validate_export(card.name, recipe.patch_size, head, image_size, cameras, card.image_size)
    if head.geometry_inputs:
        from vitdeploy.exporter.rig_graphs import rig_export_head

        head = rig_export_head(head, image_size=image_size, cameras=cameras)
    model = _zoo_model(card, recipe, weights, checkpoint=checkpoint, state=state, say=say)
    source = ModelSource(kind=SourceKind.ZOO, reference=card.name, backbone=recipe.backbone,
                         weights_sha256=state_sha256(model))
    prepared = Prepared(
        name=card.name, model=model, head=head, class_names=recipe.class_names, patch_size=recipe.patch_size,
        source=source, checkpoint=str(checkpoint) if checkpoint else (
            f"shipped:{card.weights}" if card.weights and recipe.backbone is None else None),
        graphs=lambda spec, cameras: graph_specs(head, model, image_size=image_size, max_cameras=cameras,
                                                 preprocessing=spec),
        normalization=recipe.normalization)
    return export_prepared(prepared, out=out, options=options, say=say)


def export_prepared(prepared: Prepared, *, out: str | Path, options: ExportOptions,
                    say: Callable[[str], None]) -> ExportResult:
    """Export a prepared model into ``out``: preprocessing, graphs (linted, parity-checked), manifest."""
    start = time.perf_counter()
    head, model = prepared.head, prepared.model
    image_size = head.image_size
    out = ensure_writable_dir(out)
    previous = _previous_files(out)
    parameters = sum(p.numel() for p in model.parameters())
    preprocessing, notes = _normalised(default_preprocessing(head, model, image_size), prepared, options)
    if options.fuse_preprocess:
        preprocessing = _fused(head, preprocessing, source_size=options.source_size,
                               channel_order=options.source_channel_order)

    cameras = options.cameras_for(head)
    specs = prepared.graphs(preprocessing, cameras)
    graphs = _export_graphs(specs, out=out, options=options, preprocessing=preprocessing, say=say)

    seconds = time.perf_counter() - start
    manifest = Manifest(
        model=prepared.name, head=head.spec, parameters=parameters, image_size=image_size,
        patch_size=prepared.patch_size, max_cameras=cameras, opset=options.opset,
        preprocessing=preprocessing, graphs=graphs, class_names=list(prepared.class_names),
        checkpoint=prepared.checkpoint, created_at=now_iso(), vitdeploy_version=vitdeploy.__version__,
        torch_version=torch.__version__, export_seconds=round(seconds, 2), source=prepared.source,
    )
    bundle = Bundle(out, manifest)
    bundle.save()
    # Only now, with the new model in place, go the old one's FP16/INT8 graphs, reports and engines:
    # a failed export leaves the bundle as it was; an interrupted clean-up leaves files no manifest names.
    for name in previous - {spec.file for spec in specs}:
        (out / name).unlink(missing_ok=True)
    files = {spec.file: (out / spec.file).stat().st_size for spec in specs}
    return ExportResult(bundle=bundle, seconds=seconds, files=files, notes=notes)
