"""`vitdeploy export`: a zoo model (and optional checkpoint) -> a bundle with proven parity.

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
from dataclasses import dataclass
from pathlib import Path

import torch

import vitdeploy
from vitdeploy.bundle import MANIFEST_NAME, Bundle, atomic_path, ensure_writable_dir, sha256_file
from vitdeploy.bundle.manifest import Graph, Manifest, Precision, Preprocessing, Variant
from vitdeploy.errors import BundleError, ExportError, ParityError
from vitdeploy.exporter.fused_preprocess import preprocessing_nodes
from vitdeploy.exporter.graphs import GraphSpec
from vitdeploy.exporter.lint import lint_model
from vitdeploy.exporter.onnx_export import export_graph
from vitdeploy.exporter.parity import FP32_ATOL, FP32_RTOL, check_parity
from vitdeploy.exporter.perception_graphs import perception_graph_spec
from vitdeploy.heads import Head, make_head
from vitdeploy.models.card import ModelCard
from vitdeploy.models.checkpoint import load_checkpoint, load_state_dict
from vitdeploy.models.tasks import prepare_task_export
from vitdeploy.models.zoo import get_card

MAX_CAMERAS_LIMIT = 64


@dataclass(frozen=True)
class ExportOptions:
    """How ``export_model`` exports; the defaults are `vitdeploy export`'s.

    ``image_size``: model input (H, W) pixels, multiples of the patch size (None: the card's);
    ``max_cameras``: the largest camera count (batch) the graph takes; ``opset``: ONNX opset;
    ``atol``/``rtol``: the parity tolerance against PyTorch; ``tasks``/``task_classes``: the task
    list of a Task Attention (``*-tab``) model (``vitdeploy.models.tasks``); ``fuse_preprocess``:
    resize and normalisation in the graph, which then takes raw uint8 frames of ``source_size``
    (H, W) in ``source_channel_order`` (RGB or BGR).
    """

    image_size: tuple[int, int] | None = None
    max_cameras: int = 8
    opset: int = 18
    atol: float = FP32_ATOL
    rtol: float = FP32_RTOL
    tasks: int | None = None
    task_classes: Sequence[int] | None = None
    fuse_preprocess: bool = False
    source_size: tuple[int, int] | None = None
    source_channel_order: str = "RGB"


@dataclass
class ExportResult:
    bundle: Bundle
    seconds: float
    files: dict[str, int]  # file name -> bytes


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def default_preprocessing(head: Head, model: torch.nn.Module, image_size: tuple[int, int]) -> Preprocessing:
    if head.prompted:
        from vitdeploy.exporter.sam_graphs import sam_preprocessing

        return sam_preprocessing(model)
    return Preprocessing(image_size=image_size, resize="stretch")


def _validate(card: ModelCard, head: Head, image_size: tuple[int, int], max_cameras: int) -> None:
    h, w = image_size
    p = card.patch_size
    if h % p or w % p:
        near = f"{max(p, round(h / p) * p)}x{max(p, round(w / p) * p)}"
        raise ExportError(f"image size {h}x{w} is not a multiple of the patch size {p} of {card.name}; try {near}")
    if head.prompted and tuple(image_size) != tuple(card.image_size):
        ch, cw = card.image_size
        raise ExportError(f"{card.name} takes {ch}x{cw} inputs (its relative positions are fixed); drop --image-size")
    if not 1 <= max_cameras <= MAX_CAMERAS_LIMIT:
        raise ExportError(f"--max-cameras {max_cameras} is out of range; use 1..{MAX_CAMERAS_LIMIT}")


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
    return [perception_graph_spec(model, head=head, image_size=image_size, max_cameras=max_cameras,
                                  preprocessing=preprocessing)]


def _load_model(card: ModelCard, *, checkpoint: str | Path | None, grown: dict | None,
                say: Callable[[str], None]) -> torch.nn.Module:
    """The card's model with the export's weights: ``checkpoint``, its state dict ``grown`` to the
    asked tasks (``prepare_task_export``), the shipped weights, or random ones."""
    say(f"building {card.name}")
    # The explicit matmul-softmax attention is what the ONNX graph (and quantization) should see.
    model = card.build(fused_attention=False).eval()
    if checkpoint is not None:
        say(f"loading {checkpoint}")
        if grown is None:
            load_checkpoint(model, checkpoint)
        else:
            load_state_dict(model, grown, source=str(checkpoint))
    elif card.weights:
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
    """Export zoo model ``name`` (with ``checkpoint``'s weights; default the shipped or random ones)
    into the bundle folder ``out``, as ``options`` say.

    A checkpoint of a Task Attention model with fewer tasks than ``options.tasks`` is grown to
    them, its own tasks kept bit-for-bit (``vitdeploy.models.tasks``).
    """
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    card = get_card(name)
    image_size = tuple(options.image_size or card.image_size)
    max_cameras, opset = options.max_cameras, options.opset
    head = make_head(card.head, class_names=card.class_names, image_size=image_size)
    _validate(card, head, image_size, max_cameras)
    task_export = prepare_task_export(card, count=options.tasks, classes=options.task_classes, checkpoint=checkpoint)
    if task_export is not None:
        card = task_export.card
        head = make_head(card.head, class_names=card.class_names, image_size=image_size)
    out = ensure_writable_dir(out)
    previous = _previous_files(out)
    model = _load_model(card, checkpoint=checkpoint, grown=task_export.state if task_export else None, say=say)
    parameters = sum(p.numel() for p in model.parameters())
    preprocessing = default_preprocessing(head, model, image_size)
    if options.fuse_preprocess:
        preprocessing = _fused(head, preprocessing, source_size=options.source_size,
                               channel_order=options.source_channel_order)

    specs = graph_specs(head, model, image_size=image_size, max_cameras=max_cameras, preprocessing=preprocessing)
    graphs = _export_graphs(specs, out=out, options=options, preprocessing=preprocessing, say=say)

    seconds = time.perf_counter() - start
    manifest = Manifest(
        model=card.name, head=head.spec, parameters=parameters, image_size=image_size, patch_size=card.patch_size,
        max_cameras=max_cameras, opset=opset, preprocessing=preprocessing, graphs=graphs,
        class_names=list(card.class_names),
        checkpoint=str(checkpoint) if checkpoint else (f"shipped:{card.weights}" if card.weights else None),
        created_at=now_iso(), vitdeploy_version=vitdeploy.__version__, torch_version=torch.__version__,
        export_seconds=round(seconds, 2),
    )
    bundle = Bundle(out, manifest)
    bundle.save()
    # Only now, with the new model in place, go the old one's FP16/INT8 graphs, reports and engines:
    # a failed export leaves the bundle as it was; an interrupted clean-up leaves files no manifest names.
    for name in previous - {spec.file for spec in specs}:
        (out / name).unlink(missing_ok=True)
    files = {spec.file: (out / spec.file).stat().st_size for spec in specs}
    return ExportResult(bundle=bundle, seconds=seconds, files=files)
