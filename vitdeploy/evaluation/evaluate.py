"""`vitdeploy eval`: task accuracy of a bundle on labelled data, every backend and precision side by side.

Each image goes through the manifest's preprocessing (the runtime's own code), every open backend,
and the head's decoding; boxes are compared in frame pixels (through the letterbox of
``preprocess_frames``). The bundle's head scores them (``Head.truth_scorer``): detection AP is
COCO AP computed by faster-coco-eval (``vitdeploy.heads.metrics.detection_map``); segmentation is
semantic mIoU of the mask instances; classification is top-1 accuracy. The FP32 ONNX graph and the PyTorch model (the
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitdeploy.bundle import Bundle, Manifest, Precision, atomic_write_text
from vitdeploy.errors import BundleError, DataError, VitDeployError
from vitdeploy.evaluation.datasets import EvalDataset, EvalImage, class_mapping
from vitdeploy.evaluation.rig_datasets import DETECTION3D
from vitdeploy.heads import Detections, EvalScores, head_for
from vitdeploy.heads.truth import DetectionTruth
from vitdeploy.runtime.backends import Backend, open_backend
from vitdeploy.runtime.configs import Configuration, plan
from vitdeploy.runtime.machine import describe_machine, machine_line
from vitdeploy.runtime.preprocess import preprocess_frames
from vitdeploy.runtime.rig_geometry import geometry_inputs

if TYPE_CHECKING:
    from torch import nn

SCHEMA = "vitdeploy.eval/1"

#: progress(images done, images in the dataset)
ProgressFn = Callable[[int, int], None]


@dataclass
class EvalResult:
    """One configuration's scores, or why it could not be evaluated (``reason``); ``seconds``: wall
    time of its inferences."""

    config: Configuration
    status: str = "ok"  # "ok" | "skipped"
    reason: str | None = None
    scores: EvalScores | None = None
    seconds: float = 0.0
    #: detection heads: each image's detections (frame pixels, model classes), for predictions files
    predictions: list[Detections] | None = field(default=None, repr=False)

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
    #: the evaluated images' ids, in order, and model class index -> the dataset's category id
    #: (``evaluation.predictions`` writes COCO results files with them)
    image_ids: list[int] = field(default_factory=list, repr=False)
    categories: dict[int, int] = field(default_factory=dict, repr=False)

    @property
    def metrics(self) -> list[str]:
        """The score names this head and dataset give, in table order."""
        if self.dataset.get("task") == "classification":
            return ["top1"]
        if self.dataset.get("task") == DETECTION3D:
            return ["map3d", "mate", "mase", "maoe"]
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


METRIC_LABELS = {"map": "mAP@[.5:.95]", "map50": "mAP@.5", "map75": "mAP@.75", "miou": "mIoU", "top1": "top-1",
                 "map3d": "mAP (nuScenes)", "mate": "mATE m", "mase": "mASE", "maoe": "mAOE rad"}


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
    head = head_for(manifest)
    task = head.eval_task
    if task is None:
        raise DataError(f"`vitdeploy eval` cannot score {head.kind} heads ({head.why_not('eval')})")
    if dataset.task != task:
        need = {"detection": "a COCO file, a folder with annotations.json, or 'synthetic'",
                DETECTION3D: "a folder with boxes3d.json (`vitdeploy data rig3d`) or 'synthetic'"}.get(
                    task, "a folder with one sub-folder of images per class")
        raise DataError(f"{manifest.model} is a {head.kind} ({task}) model but {dataset.name} is {dataset.task} "
                        f"data; give {need}")
    if manifest.preprocessing.fused:
        raise BundleError(f"bundle of {manifest.model} takes raw uint8 frames (fused preprocessing); `vitdeploy eval` "
                          "feeds normalised float batches — evaluate a bundle exported without fused preprocessing")
    return class_mapping(dataset, manifest.class_names)


def evaluate_backends(backends: dict[Configuration, Backend], dataset: EvalDataset, manifest: Manifest, *,
                      batch: int = 1, progress: ProgressFn | None = None,
                      image_ids: list[int] | None = None) -> dict[Configuration, EvalResult]:
    """Run every backend over ``dataset`` in batches of ``batch`` images (the camera axis) and score
    it; a rig-level head's dataset gives whole frame sets, one per run with its cameras' geometry.
    A backend that fails with a ``VitDeployError`` part-way is reported skipped with the error; the
    others go on. ``image_ids`` (a list) receives each image's id, in order."""
    image_ids = [] if image_ids is None else image_ids
    class_map = check_compatible(manifest, dataset)
    head = head_for(manifest)
    sets = not head.per_camera
    batch = 1 if sets else batch
    masks = _scores_masks(manifest, dataset)
    scorers = {c: head.truth_scorer(class_map=class_map, masks=masks) for c in backends}
    seconds = dict.fromkeys(backends, 0.0)
    failed: dict[Configuration, str] = {}
    done = 0
    pending: list[EvalImage] = []

    def flush() -> None:
        nonlocal done
        frames = pending[0].images if sets else [im.image for im in pending]
        x, letterboxes = preprocess_frames(frames, manifest.preprocessing)
        geometry = geometry_inputs(pending[0].geometry, manifest.preprocessing) if sets else {}
        for config, backend in backends.items():
            if config in failed:
                continue
            spec = backend.inputs[0]
            start = time.perf_counter()
            try:
                outputs = backend.infer({spec.name: x.astype(spec.dtype, copy=False), **geometry})
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
        image_ids.append(image.image_id if image.image_id is not None else len(image_ids) + 1)
        pending.append(image)
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    return {c: EvalResult(c, status="skipped", reason=failed[c]) if c in failed
            else EvalResult(c, scores=scorers[c].scores(), seconds=seconds[c],
                            predictions=scorers[c].predictions if isinstance(scorers[c], DetectionTruth) else None)
            for c in backends}


def _scores_masks(manifest: Manifest, dataset: EvalDataset) -> bool:
    """Whether masks are scored: a head that predicts instance masks, on data with masks."""
    return head_for(manifest).instance_masks and dataset.has_masks


def torch_model_problem(manifest: Manifest) -> str | None:
    from vitdeploy.models.exported import torch_model_problem as problem

    return problem(manifest)


def _exported_model(manifest: Manifest) -> nn.Module:
    from vitdeploy.models.exported import exported_model

    return exported_model(manifest)


def eval_plan(bundle: Bundle, *, backends: list[str] | None = None, precisions: list[Precision] | None = None,
              device: str | None = None, allow_rejected: bool = False) -> list[Configuration]:
    """The configurations to evaluate: ``plan``'s backend x precision rows (``backends`` None:
    onnxruntime), plus the FP32 ONNX graph and the PyTorch reference (first), whatever was asked."""
    configs = plan(bundle, backends=backends or ["onnxruntime"], precisions=precisions, cameras=[1], device=device,
                   allow_rejected=allow_rejected)
    refs = [Configuration("torch", Precision.FP32, 1, device), Configuration("onnxruntime", Precision.FP32, 1, device)]
    rest = [c for c in configs if c not in refs]
    return refs + rest


def evaluate_bundle(bundle: Bundle, dataset: EvalDataset, *, configs: list[Configuration],
                    torch_model: Callable[[], nn.Module] | None = None,
                    progress: ProgressFn | None = None, allow_rejected: bool = False) -> EvalReport:
    """Evaluate ``configs`` (see ``eval_plan``) of ``bundle`` on ``dataset``.

    ``torch_model`` builds the bundle's PyTorch model (default ``exported_model``: the zoo model
    with the manifest's checkpoint, or the factory's); a bundle exported with random weights or
    imported from ONNX has no reference to rebuild, so its torch rows are skipped, saying why.
    Graphs calibration rejected are skipped unless ``allow_rejected`` (then listed in the report's
    bundle).
    """
    manifest = bundle.manifest
    class_map = check_compatible(manifest, dataset)  # before any backend is opened
    image_ids: list[int] = []
    results: dict[Configuration, EvalResult] = {}
    backends: dict[Configuration, Backend] = {}
    model = None
    batch = max(1, min(manifest.max_cameras, 8))
    try:
        for config in configs:
            try:
                this_model = None
                if config.backend == "torch":
                    problem = torch_model_problem(manifest)
                    if problem is not None:
                        raise BundleError(problem)
                    if model is None:
                        model = torch_model() if torch_model is not None else _exported_model(manifest)
                    this_model = copy.deepcopy(model)  # an FP16 backend converts its module in place
                backends[config] = open_backend(config.backend, bundle, precision=config.precision,
                                                device=config.device, model=this_model, allow_rejected=allow_rejected)
            except VitDeployError as exc:
                results[config] = EvalResult(config, status="skipped", reason=str(exc))
        if backends:
            results.update(evaluate_backends(backends, dataset, manifest, batch=batch, progress=progress,
                                             image_ids=image_ids))
    finally:
        for backend in backends.values():
            backend.close()
    return EvalReport(
        bundle={"path": str(bundle.path), "model": manifest.model, "head": manifest.head.kind,
                "image_size": list(manifest.image_size), "checkpoint": manifest.checkpoint,
                "allow_rejected": sorted({line for c in backends if c.backend != "torch"
                                         for line in bundle.rejected_variants(c.precision)})},
        dataset={"name": dataset.name, "task": dataset.task, "images": len(dataset),
                 "classes": list(dataset.class_names), "masks": _scores_masks(manifest, dataset)},
        machine=describe_machine(), results=[results[c] for c in configs],
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), image_ids=image_ids,
        categories=category_map(dataset, class_map))


def category_map(dataset: EvalDataset, class_map: np.ndarray) -> dict[int, int]:
    """Model class index -> the dataset's category id (a COCO file's own ids; else 1, 2, ... in the
    dataset's class order), from ``class_map`` (dataset class index -> model class index)."""
    ids = dataset.category_ids or tuple(range(1, len(dataset.class_names) + 1))
    return {int(m): int(ids[d]) for d, m in enumerate(class_map)}

