"""`vitdeploy eval`: task accuracy of a bundle on labelled data, every backend and precision side by side.

Each image goes through the manifest's preprocessing (the runtime's own code), every open backend,
and the runtime's decoding; boxes are compared in frame pixels (``decode_detr`` with the
letterbox of ``preprocess_frames``). Detection AP is COCO AP computed by faster-coco-eval
(``vitdeploy.evaluation.metrics.detection_map``); segmentation is semantic mIoU of the mask
instances; classification is top-1 accuracy. The FP32 ONNX graph and the PyTorch model (the
reference) are always evaluated, so a precision's loss reads straight off the table.

All backends see the same batch before the next one is read, so a dataset is read (or rendered)
once however many configurations are evaluated.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitdeploy.bench.configs import Configuration, plan
from vitdeploy.bench.machine import describe_machine
from vitdeploy.bench.report import machine_line
from vitdeploy.bundle import Bundle, Manifest, Precision, atomic_write_text
from vitdeploy.errors import BundleError, DataError, VitDeployError
from vitdeploy.evaluation.datasets import EvalDataset, EvalImage, class_mapping
from vitdeploy.evaluation.metrics import MAX_DETECTIONS, detection_map
from vitdeploy.evaluation.semantic import SemanticIoU, instances_to_semantic
from vitdeploy.runtime.backends import Backend, open_backend
from vitdeploy.runtime.postprocess import Detections, decode_classification, decode_detr, decode_masks
from vitdeploy.runtime.preprocess import Letterbox, preprocess_frames

if TYPE_CHECKING:
    from torch import nn

SCHEMA = "vitdeploy.eval/1"
#: Detections kept for AP: COCO AP ranks every detection, so only near-certain "no object" is cut.
SCORE_FLOOR = 0.001
#: Mask instances at or above this score make the predicted semantic map (mIoU).
MASK_SCORE = 0.5
#: Heads `vitdeploy eval` scores, and what it measures for each.
TASKS = {"detr": "detection", "mask": "detection", "cls": "classification", "cait": "classification"}

#: progress(images done, images in the dataset)
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class EvalScores:
    """One configuration's accuracy: COCO box AP over IoU 0.50:0.95 (``map``), at 0.50 and 0.75;
    semantic mIoU (mask heads); top-1 accuracy (classification heads). All 0..1; None where the
    head or the data does not give it (e.g. no ground-truth boxes, no masks)."""

    images: int
    map: float | None = None
    map50: float | None = None
    map75: float | None = None
    miou: float | None = None
    top1: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"images": self.images, "map": self.map, "map50": self.map50, "map75": self.map75,
                "miou": self.miou, "top1": self.top1}


class EvalScorer:
    """Accumulates one configuration's predictions against the ground truth.

    ``head``: detr | mask | cls | cait; ``class_map``: dataset class index -> model class index;
    ``input_size``: (H, W) of the model input, pixels; ``masks``: score mask instances as
    semantic mIoU (mask heads on data with masks).
    """

    def __init__(self, *, head: str, num_classes: int, class_map: np.ndarray, input_size: tuple[int, int],
                 masks: bool = False):
        if head not in TASKS:
            raise DataError(f"`vitdeploy eval` scores {', '.join(TASKS)} heads; this bundle's head is {head!r}")
        self.head = head
        self.num_classes = num_classes
        self.class_map = np.asarray(class_map, np.int64)
        self.input_size = tuple(input_size)
        self.semantic = SemanticIoU(num_classes) if masks else None
        self.predictions: list[Detections] = []
        self.ground_truth: list[Detections] = []
        self.frame_sizes: list[tuple[int, int]] = []
        self.correct = 0
        self.images = 0

    def add(self, outputs: dict[str, np.ndarray], letterboxes: list[Letterbox], images: list[EvalImage]) -> None:
        """One batch: the backend's raw ``outputs`` for ``images`` (in order) preprocessed with
        ``letterboxes``."""
        if self.head in ("cls", "cait"):
            top = decode_classification(outputs["logits"], top_k=1)
            for cam, im in zip(top, images, strict=True):
                self.correct += int(cam[0][0] == self.class_map[im.label])
                self.images += 1
            return
        if self.head == "detr":
            preds = decode_detr(outputs["logits"], outputs["boxes"], input_size=self.input_size,
                                letterboxes=letterboxes, score_threshold=SCORE_FLOOR, top_k=MAX_DETECTIONS)
        else:
            preds = decode_masks(outputs["logits"], outputs["masks"], input_size=self.input_size,
                                 letterboxes=letterboxes, score_threshold=SCORE_FLOOR, top_k=MAX_DETECTIONS)
        gts = [Detections(im.boxes, np.ones(len(im.labels), np.float32), self.class_map[im.labels]) for im in images]
        for pred, im in zip(preds, images, strict=True):
            if self.semantic is not None and im.semantic is not None:
                gt_map = np.where(im.semantic < len(self.class_map),
                                  self.class_map[np.minimum(im.semantic, len(self.class_map) - 1)], im.semantic)
                self.semantic.add(instances_to_semantic(pred.masks, pred.labels, pred.scores,
                                                        shape=im.semantic.shape, min_score=MASK_SCORE),
                                  gt_map.astype(np.uint8))
            pred.masks = None  # boxes are all AP needs; full-frame masks would pile up
        self.add_detections(preds, gts, frame_sizes=[im.image.shape[:2] for im in images])

    def add_detections(self, predictions: list[Detections], ground_truth: list[Detections], *,
                       frame_sizes: list[tuple[int, int]] | None = None) -> None:
        """Decoded predictions (scored boxes, x1 y1 x2 y2 frame pixels, model class indices) and
        the ground truth of the same images, in order."""
        if len(predictions) != len(ground_truth):
            raise DataError(f"{len(predictions)} predicted images for {len(ground_truth)} ground-truth images")
        self.predictions += predictions
        self.ground_truth += ground_truth
        self.frame_sizes += frame_sizes or [(0, 0)] * len(predictions)
        self.images += len(predictions)

    def scores(self) -> EvalScores:
        if self.head in ("cls", "cait"):
            return EvalScores(images=self.images, top1=self.correct / self.images if self.images else None)
        # COCO box AP does not depend on the image size it records; the largest frame is given
        size = max(self.frame_sizes, default=(1, 1))
        d = detection_map(self.predictions, self.ground_truth, num_classes=self.num_classes,
                          image_size=(max(size[0], 1), max(size[1], 1)))
        return EvalScores(images=self.images, map=d.map, map50=d.map50, map75=d.map75,
                          miou=self.semantic.mean() if self.semantic is not None else None)


@dataclass
class EvalResult:
    """One configuration's scores, or why it could not be evaluated (``reason``); ``seconds``: wall
    time of its inferences."""

    config: Configuration
    status: str = "ok"  # "ok" | "skipped"
    reason: str | None = None
    scores: EvalScores | None = None
    seconds: float = 0.0

    @property
    def role(self) -> str:
        c = self.config
        if c.precision is Precision.FP32 and c.backend == "torch":
            return "PyTorch reference"
        if c.precision is Precision.FP32 and c.backend == "onnxruntime":
            return "FP32 ONNX"
        return ""

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {"backend": c.backend, "precision": c.precision.value, "device": c.device, "role": self.role,
                "status": self.status, "reason": self.reason, "seconds": round(self.seconds, 3),
                "scores": self.scores.to_dict() if self.scores else None}


@dataclass
class EvalReport:
    bundle: dict[str, Any]
    dataset: dict[str, Any]
    machine: dict[str, Any]
    results: list[EvalResult]
    created_at: str = ""

    @property
    def metrics(self) -> list[str]:
        """The score names this head and dataset give, in table order."""
        if self.dataset.get("task") == "classification":
            return ["top1"]
        names = ["map", "map50", "map75"]
        return names + (["miou"] if any(r.scores and r.scores.miou is not None for r in self.results) else [])

    def reference(self, backend: str = "onnxruntime") -> EvalResult | None:
        return next((r for r in self.results if r.scores and r.config.backend == backend
                     and r.config.precision is Precision.FP32), None)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "created_at": self.created_at, "bundle": self.bundle, "dataset": self.dataset,
                "machine": self.machine, "results": [r.to_dict() for r in self.results]}

    def write_json(self, path: str | Path) -> Path:
        """Write the report to ``path`` atomically."""
        import json

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return Path(path)

    def to_markdown(self) -> str:
        names = self.metrics
        ref = self.reference()
        lines = [f"# vitdeploy eval: {self.bundle.get('model', '?')}", "",
                 f"- data: {self.dataset.get('name')} ({self.dataset.get('images')} images)",
                 f"- machine: {machine_line(self.machine)}", "",
                 "| backend | precision | role | " + " | ".join(METRIC_LABELS[n] for n in names)
                 + (f" | Δ {METRIC_LABELS[names[0]]} vs FP32 ONNX" if ref else "") + " |",
                 "|" + "---|" * (3 + len(names) + (1 if ref else 0))]
        for r in self.results:
            c = r.config
            if r.scores is None:
                lines.append(f"| {c.backend} | {c.precision.value} | {r.role} | skipped: "
                             f"{(r.reason or '').replace('|', '/')} |" + " |" * (len(names) - 1 + (1 if ref else 0)))
                continue
            cells = [format_score(getattr(r.scores, n)) for n in names]
            if ref:
                cells.append(format_delta(getattr(r.scores, names[0]), getattr(ref.scores, names[0])))
            lines.append(f"| {c.backend} | {c.precision.value} | {r.role} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


METRIC_LABELS = {"map": "mAP@[.5:.95]", "map50": "mAP@.5", "map75": "mAP@.75", "miou": "mIoU", "top1": "top-1"}


def format_score(v: float | None, digits: int = 4) -> str:
    """A 0..1 score for a table; '-' where there is none."""
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def format_delta(v: float | None, ref: float | None, digits: int = 4) -> str:
    """``v - ref`` with its sign; '-' where either is missing."""
    if v is None or ref is None:
        return "-"
    return f"{v - ref:+.{digits}f}"


# ---- running -------------------------------------------------------------------------------------

def check_compatible(manifest: Manifest, dataset: EvalDataset) -> np.ndarray:
    """Raise a ``DataError`` unless ``dataset`` can score this bundle's head (task, class names,
    preprocessing); returns dataset class index -> model class index."""
    task = TASKS.get(manifest.head)
    if task is None:
        raise DataError(f"`vitdeploy eval` scores {', '.join(TASKS)} heads; {manifest.model} has head {manifest.head!r}")
    if dataset.task != task:
        need = ("a COCO file, a folder with annotations.json, or 'synthetic'" if task == "detection"
                else "a folder with one sub-folder of images per class")
        raise DataError(f"{manifest.model} is a {manifest.head} ({task}) model but {dataset.name} is {dataset.task} "
                        f"data; give {need}")
    if manifest.preprocessing.fused:
        raise BundleError(f"bundle of {manifest.model} takes raw uint8 frames (fused preprocessing); `vitdeploy eval` "
                          "feeds normalised float batches — evaluate a bundle exported without fused preprocessing")
    return class_mapping(dataset, manifest.class_names)


def evaluate_backends(backends: dict[Configuration, Backend], dataset: EvalDataset, manifest: Manifest, *,
                      batch: int = 1, progress: ProgressFn | None = None) -> dict[Configuration, EvalResult]:
    """Run every backend over ``dataset`` in batches of ``batch`` images (the camera axis) and score
    it. A backend that fails with a ``VitDeployError`` part-way is reported skipped with the error;
    the others go on."""
    class_map = check_compatible(manifest, dataset)
    masks = manifest.head == "mask" and dataset.has_masks
    scorers = {c: EvalScorer(head=manifest.head, num_classes=len(manifest.class_names), class_map=class_map,
                             input_size=tuple(manifest.image_size), masks=masks) for c in backends}
    seconds = dict.fromkeys(backends, 0.0)
    failed: dict[Configuration, str] = {}
    done = 0
    pending: list[EvalImage] = []

    def flush() -> None:
        nonlocal done
        x, letterboxes = preprocess_frames([im.image for im in pending], manifest.preprocessing)
        for config, backend in backends.items():
            if config in failed:
                continue
            spec = backend.inputs[0]
            start = time.perf_counter()
            try:
                outputs = backend.infer({spec.name: x.astype(spec.dtype, copy=False)})
            except VitDeployError as exc:
                failed[config] = str(exc)
                continue
            seconds[config] += time.perf_counter() - start
            scorers[config].add(outputs, letterboxes, pending)
        done += len(pending)
        pending.clear()
        if progress is not None:
            progress(done, len(dataset))

    for image in dataset.images(masks=masks):
        pending.append(image)
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    return {c: EvalResult(c, status="skipped", reason=failed[c]) if c in failed
            else EvalResult(c, scores=scorers[c].scores(), seconds=seconds[c]) for c in backends}


def eval_plan(bundle: Bundle, *, backends: list[str], precisions: list[Precision] | None,
              device: str | None = None) -> list[Configuration]:
    """The configurations to evaluate: ``plan``'s backend x precision rows, plus the FP32 ONNX graph
    and the PyTorch reference (first), whatever was asked."""
    configs = plan(bundle, backends=backends, precisions=precisions, cameras=[1], device=device)
    refs = [Configuration("torch", Precision.FP32, 1, device), Configuration("onnxruntime", Precision.FP32, 1, device)]
    rest = [c for c in configs if c not in refs]
    return refs + rest


def evaluate_bundle(bundle: Bundle, dataset: EvalDataset, *, configs: list[Configuration],
                    torch_model: Callable[[], nn.Module] | None = None,
                    progress: ProgressFn | None = None) -> EvalReport:
    """Evaluate ``configs`` (see ``eval_plan``) of ``bundle`` on ``dataset``.

    ``torch_model`` builds the bundle's PyTorch model (zoo + the manifest's checkpoint); a bundle
    exported with random weights has no reference to rebuild, so its torch rows are skipped.
    """
    manifest = bundle.manifest
    check_compatible(manifest, dataset)  # before any backend is opened
    results: dict[Configuration, EvalResult] = {}
    backends: dict[Configuration, Backend] = {}
    model = None
    batch = max(1, min(manifest.max_cameras, 8))
    try:
        for config in configs:
            try:
                this_model = None
                if config.backend == "torch":
                    if manifest.checkpoint is None:
                        raise BundleError("the bundle was exported with random weights, which the PyTorch model "
                                          "cannot rebuild; export with --checkpoint to compare against PyTorch")
                    if torch_model is None:
                        raise BundleError("no PyTorch model was given for the torch backend")
                    model = model if model is not None else torch_model()
                    this_model = copy.deepcopy(model)  # an FP16 backend converts its module in place
                backends[config] = open_backend(config.backend, bundle, precision=config.precision,
                                                device=config.device, model=this_model)
            except VitDeployError as exc:
                results[config] = EvalResult(config, status="skipped", reason=str(exc))
        if backends:
            results.update(evaluate_backends(backends, dataset, manifest, batch=batch, progress=progress))
    finally:
        for backend in backends.values():
            backend.close()
    return EvalReport(
        bundle={"path": str(bundle.path), "model": manifest.model, "head": manifest.head,
                "image_size": list(manifest.image_size), "checkpoint": manifest.checkpoint},
        dataset={"name": dataset.name, "task": dataset.task, "images": len(dataset),
                 "classes": list(dataset.class_names), "masks": dataset.has_masks and manifest.head == "mask"},
        machine=describe_machine(), results=[results[c] for c in configs],
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

