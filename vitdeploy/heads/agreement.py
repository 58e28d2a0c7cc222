"""Task-level agreement of a low-precision graph with FP32 (calibration, golden checks).

With the FP32 predictions as the ground truth (DESIGN.md decision 4):

* detection: COCO box mAP@[.50:.95] (faster-coco-eval) of the candidate's detections decoded at
  score >= ``PREDICTION_SCORE`` against the FP32 detections at score >= ``GROUND_TRUTH_SCORE``
  (confident objects only: a box FP32 itself barely believes in is no ground truth); mAP@.50 is
  reported beside it;
* instance masks: mean mask IoU, query by query, over the queries FP32 is confident in (all
  queries when there are none), at the graph's mask resolution;
* classification: top-1 agreement (per task slice, averaged, for Task Attention).

Each head kind picks one of these in ``Head.compare_to``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vitdeploy.heads.metrics import detection_map, mean_mask_iou, top1_agreement
from vitdeploy.heads.results import Detections

#: FP32 detections at or above this score are the pseudo ground truth.
GROUND_TRUTH_SCORE = 0.5
#: Low-precision detections at or above this score are ranked for AP (low: AP needs the full
#: precision/recall curve, and a box that only drops from 0.55 to 0.45 is not a miss).
PREDICTION_SCORE = 0.05


@dataclass
class TaskAgreement:
    """``value`` in 0..1 (1 = the same predictions as FP32), or None with ``reason`` when it
    cannot be measured (e.g. FP32 detects nothing confidently on the held-out frames)."""

    metric: str  # "detection_map" | "mask_iou" | "top1"
    description: str
    value: float | None
    details: dict = field(default_factory=dict)
    reason: str = ""


#: Scores candidate outputs (name -> (N, ...) array) against the reference it was made from.
AgreementFn = Callable[[dict[str, np.ndarray]], TaskAgreement]


def detection_agreement(reference: dict[str, np.ndarray], *, decode: Callable[..., list[Detections]],
                        num_classes: int, image_size: tuple[int, int]) -> AgreementFn:
    """``decode(outputs, score_threshold=...)`` gives detections in model-input pixels."""
    truth = decode(reference, score_threshold=GROUND_TRUTH_SCORE)

    def score(candidate: dict[str, np.ndarray]) -> TaskAgreement:
        pred = decode(candidate, score_threshold=PREDICTION_SCORE)
        return _box_agreement(pred, truth, num_classes=num_classes, image_size=image_size,
                              predictions=f"predictions at score >= {PREDICTION_SCORE}")

    return score


def recorded_detection_agreement(reference: Sequence[Detections], candidate: Sequence[Detections], *,
                                 num_classes: int, image_size: tuple[int, int]) -> TaskAgreement:
    """The detection agreement of two runs' decoded detections of the same frames, in order (what
    `vitdeploy replay` reads back from the JSONL): the reference's boxes at score >=
    ``GROUND_TRUTH_SCORE`` are the ground truth; the candidate's are ranked as they were recorded
    (at its run's score threshold: a run at ``PREDICTION_SCORE`` gives calibration's figure)."""
    truth = [Detections(d.boxes[d.scores >= GROUND_TRUTH_SCORE], d.scores[d.scores >= GROUND_TRUTH_SCORE],
                        d.labels[d.scores >= GROUND_TRUTH_SCORE]) for d in reference]
    return _box_agreement(list(candidate), truth, num_classes=num_classes, image_size=image_size,
                          predictions="predictions as recorded")


def _box_agreement(pred: list[Detections], truth: list[Detections], *, num_classes: int,
                   image_size: tuple[int, int], predictions: str) -> TaskAgreement:
    desc = f"box mAP@[.50:.95] vs FP32 detections (FP32 score >= {GROUND_TRUTH_SCORE} as ground truth, {predictions})"
    scores = detection_map(pred, truth, num_classes=num_classes, image_size=image_size)
    details = {"map50": scores.map50, "map75": scores.map75, "ground_truth_boxes": scores.ground_truth_boxes,
               "predicted_boxes": scores.predicted_boxes, "images": scores.images}
    if scores.map is None:
        return TaskAgreement("detection_map", desc, None, details,
                             reason=f"FP32 detects nothing with score >= {GROUND_TRUTH_SCORE} on these frames, "
                                    "so there is no ground truth to agree with (an untrained model, or frames "
                                    "without the model's classes)")
    return TaskAgreement("detection_map", desc, scores.map, details)


def mask_agreement(reference: dict[str, np.ndarray], *, query_scores: np.ndarray) -> AgreementFn:
    """``query_scores`` (N, Q): the FP32 score of each query's best class."""
    confident = query_scores >= GROUND_TRUTH_SCORE
    which = "FP32-confident queries"
    if not confident.any():
        confident = np.ones_like(confident)
        which = "all queries (FP32 is confident in none)"
    ref = reference["masks"][confident] > 0

    def score(candidate: dict[str, np.ndarray]) -> TaskAgreement:
        value = mean_mask_iou(ref, candidate["masks"][confident] > 0)
        return TaskAgreement("mask_iou", f"mean mask IoU vs FP32 over {which}, at the mask resolution", value,
                             {"masks": int(confident.sum())})

    return score


def top1_task_agreement(reference: dict[str, np.ndarray], *,
                        tasks: Sequence[tuple[str, int]] | None = None) -> AgreementFn:
    """Top-1 agreement of ``logits``; with ``tasks`` ((name, classes) in order), per task slice of
    the concatenated logits, averaged over the tasks."""
    ref = reference["logits"]

    def score(candidate: dict[str, np.ndarray]) -> TaskAgreement:
        cand = candidate["logits"]
        if tasks is None:
            return TaskAgreement("top1", "top-1 class agreement with FP32", top1_agreement(ref, cand),
                                 {"frames": int(ref.shape[0])})
        per_task, start = {}, 0
        for name, classes in tasks:
            per_task[name] = top1_agreement(ref[:, start:start + classes], cand[:, start:start + classes])
            start += classes
        return TaskAgreement("top1", "top-1 class agreement with FP32, mean over tasks",
                             float(np.mean(list(per_task.values()))), {"tasks": per_task})

    return score
