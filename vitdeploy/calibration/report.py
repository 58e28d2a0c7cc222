"""The accuracy report: a low-precision graph against its FP32 original on held-out frames.

Two levels (DESIGN.md decision 4). Per output tensor: max / mean absolute error and cosine
similarity. Per task, what a perception engineer would look at, with the FP32 predictions as the
ground truth:

* detection (``detr``): COCO box mAP@[.50:.95] (faster-coco-eval) of the low-precision detections
  decoded at score >= 0.05 against the FP32 detections at score >= 0.5 (confident objects only:
  a box FP32 itself barely believes in is no ground truth). mAP@.50 is reported beside it;
* segmentation (``mask``): mean mask IoU, query by query, over the queries FP32 is confident in
  (score >= 0.5; all queries when there are none), masks compared at the graph's mask resolution;
* classification (``cls``, ``cait``): top-1 agreement; Task Attention (``tab``): top-1 agreement of
  each task's slice of the concatenated logits, averaged over tasks.

The task value is the *agreement* that ``--min-agreement`` is checked against.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from vitdeploy.calibration.modelopt_runner import CalibrationError
from vitdeploy.evaluation.metrics import detection_map, mean_mask_iou, top1_agreement
from vitdeploy.runtime.backends.onnxruntime import cpu_session
from vitdeploy.runtime.postprocess import decode_detr

#: FP32 detections at or above this score are the pseudo ground truth.
GROUND_TRUTH_SCORE = 0.5
#: Low-precision detections at or above this score are ranked for AP (low: AP needs the full
#: precision/recall curve, and a box that only drops from 0.55 to 0.45 is not a miss).
PREDICTION_SCORE = 0.05
_BATCH = 8
#: Head type -> the task-level agreement measured for it.
TASK_METRICS = {"detr": "detection_map", "mask": "mask_iou", "cls": "top1", "cait": "top1", "tab": "top1"}


@dataclass
class TensorAgreement:
    """One output over all held-out frames. ``cosine`` is over the whole tensor flattened;
    ``min_frame_cosine`` the worst single frame."""

    max_abs: float
    mean_abs: float
    cosine: float
    min_frame_cosine: float


@dataclass
class TaskAgreement:
    """``value`` in 0..1 (1 = the same predictions as FP32), or None with ``reason`` when it
    cannot be measured (e.g. FP32 detects nothing confidently on the held-out frames)."""

    metric: str  # "detection_map" | "mask_iou" | "top1"
    description: str
    value: float | None
    details: dict = field(default_factory=dict)
    reason: str = ""


@dataclass
class AccuracyReport:
    precision: str
    graph: str
    frames: int
    heldout_sha256: str
    outputs: dict[str, TensorAgreement]
    task: TaskAgreement | None
    min_agreement: float | None = None
    extra: dict = field(default_factory=dict)  # settings, placement, sensitivity

    @property
    def agreement(self) -> float | None:
        return self.task.value if self.task else None

    @property
    def passed(self) -> bool:
        """False only when a threshold was given and the task agreement is below it (or unmeasurable)."""
        if self.min_agreement is None:
            return True
        return self.agreement is not None and self.agreement >= self.min_agreement

    def to_json(self) -> str:
        data = asdict(self)
        data["passed"] = self.passed
        data["reference"] = "fp32"
        return json.dumps(_finite(data), indent=2) + "\n"


def _finite(obj):
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


# ---- running graphs ---------------------------------------------------------------------------------
def run_graph(model: str | Path | onnx.ModelProto, feeds: dict[str, np.ndarray], *, batch: int = _BATCH,
              progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Run ``feeds`` ((N, ...) per input) through onnxruntime on the CPU, ``batch`` cameras at a
    time; returns each output concatenated over N."""
    session = cpu_session(model)
    names = [o.name for o in session.get_outputs()]
    n = int(next(iter(feeds.values())).shape[0])
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, n, batch):
        outs = session.run(None, {k: v[start:start + batch] for k, v in feeds.items()})
        for name, out in zip(names, outs, strict=True):
            chunks[name].append(out)
        if progress:
            progress(min(start + batch, n), n)
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def tensor_agreement(reference: np.ndarray, candidate: np.ndarray) -> TensorAgreement:
    r = reference.astype(np.float64).reshape(reference.shape[0], -1)
    c = candidate.astype(np.float64).reshape(candidate.shape[0], -1)
    diff = np.abs(r - c)

    def cosine(a: np.ndarray, b: np.ndarray, axis=None) -> np.ndarray:
        na, nb = np.linalg.norm(a, axis=axis), np.linalg.norm(b, axis=axis)
        dot = (a * b).sum(axis=axis)
        both_zero = (na == 0) & (nb == 0)
        return np.where(both_zero, 1.0, dot / np.maximum(na * nb, 1e-30))

    return TensorAgreement(max_abs=float(diff.max()) if diff.size else 0.0, mean_abs=float(diff.mean()) if diff.size else 0.0,
                           cosine=float(cosine(r.ravel(), c.ravel())), min_frame_cosine=float(cosine(r, c, axis=1).min()))


# ---- task agreement -------------------------------------------------------------------------------------
class TaskScorer:
    """Scores candidate outputs against FP32 outputs of the same frames for one head type.

    Built once per report from the FP32 outputs, so sensitivity analysis can score many
    candidates cheaply."""

    def __init__(self, *, head: str, reference: dict[str, np.ndarray], image_size: tuple[int, int],
                 num_classes: int | None = None, head_config: dict | None = None):
        self.head = head
        self.head_config = head_config or {}
        self.reference = reference
        self.image_size = tuple(image_size)
        self.num_classes = num_classes
        if head == "detr":
            self._gt = decode_detr(reference["logits"], reference["boxes"], input_size=self.image_size,
                                   score_threshold=GROUND_TRUTH_SCORE)

    def score(self, candidate: dict[str, np.ndarray]) -> TaskAgreement | None:
        if self.head == "detr":
            return self._detection(candidate)
        if self.head == "mask":
            return self._masks(candidate)
        if self.head in ("cls", "cait"):
            value = top1_agreement(self.reference["logits"], candidate["logits"])
            return TaskAgreement("top1", "top-1 class agreement with FP32", value,
                                 {"frames": int(self.reference["logits"].shape[0])})
        if self.head == "tab":
            return self._tasks(candidate)
        return None

    def _tasks(self, candidate: dict[str, np.ndarray]) -> TaskAgreement:
        ref, cand = self.reference["logits"], candidate["logits"]
        tasks = self.head_config.get("tasks") or [{"name": "all", "num_classes": ref.shape[-1]}]
        per_task, start = {}, 0
        for task in tasks:
            end = start + int(task["num_classes"])
            per_task[task["name"]] = top1_agreement(ref[:, start:end], cand[:, start:end])
            start = end
        return TaskAgreement("top1", "top-1 class agreement with FP32, mean over tasks",
                             float(np.mean(list(per_task.values()))), {"tasks": per_task})

    def _detection(self, candidate: dict[str, np.ndarray]) -> TaskAgreement:
        num_classes = self.num_classes or int(self.reference["logits"].shape[-1]) - 1
        pred = decode_detr(candidate["logits"], candidate["boxes"], input_size=self.image_size,
                           score_threshold=PREDICTION_SCORE)
        scores = detection_map(pred, self._gt, num_classes=num_classes, image_size=self.image_size)
        desc = (f"box mAP@[.50:.95] vs FP32 detections (FP32 score >= {GROUND_TRUTH_SCORE} as ground truth, "
                f"predictions at score >= {PREDICTION_SCORE})")
        details = {"map50": scores.map50, "map75": scores.map75, "ground_truth_boxes": scores.ground_truth_boxes,
                   "predicted_boxes": scores.predicted_boxes, "images": scores.images}
        if scores.map is None:
            return TaskAgreement("detection_map", desc, None, details,
                                 reason=f"FP32 detects nothing with score >= {GROUND_TRUTH_SCORE} on the held-out "
                                        "frames, so there is no ground truth to agree with (an untrained model, "
                                        "or frames without the model's classes)")
        return TaskAgreement("detection_map", desc, scores.map, details)

    def _masks(self, candidate: dict[str, np.ndarray]) -> TaskAgreement:
        logits = self.reference["logits"].astype(np.float32)
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = e / e.sum(axis=-1, keepdims=True)
        confident = probs[..., :-1].max(axis=-1) >= GROUND_TRUTH_SCORE  # (N, Q)
        which = "FP32-confident queries"
        if not confident.any():
            confident = np.ones_like(confident)
            which = "all queries (FP32 is confident in none)"
        ref = self.reference["masks"][confident] > 0
        cand = candidate["masks"][confident] > 0
        value = mean_mask_iou(ref, cand)
        return TaskAgreement("mask_iou", f"mean mask IoU vs FP32 over {which}, at the mask resolution", value,
                             {"masks": int(confident.sum())})


def build_report(*, precision: str, graph: str, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
                 scorer: TaskScorer, heldout_sha256: str, min_agreement: float | None) -> AccuracyReport:
    missing = sorted(set(reference) - set(candidate))
    if missing:
        raise CalibrationError(f"the {precision} graph lacks outputs {missing} of the FP32 graph")
    outputs = {name: tensor_agreement(reference[name], candidate[name]) for name in reference}
    frames = int(next(iter(reference.values())).shape[0])
    return AccuracyReport(precision=precision, graph=graph, frames=frames, heldout_sha256=heldout_sha256,
                          outputs=outputs, task=scorer.score(candidate), min_agreement=min_agreement)
