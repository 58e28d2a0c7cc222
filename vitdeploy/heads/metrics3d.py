"""3D detection scores in the ego frame, by nuScenes' definitions.

Matching is by centre distance in the ground plane, not IoU: a prediction matches the nearest
unmatched ground-truth box of its class in its frame set, greedily in descending score order,
when that distance is under the threshold. For each class and each threshold (0.5, 1, 2, 4 m)
precision is sampled at 101 recall points and AP is the mean of (precision - 0.1) clipped at 0
over recall above 0.1, divided by 0.9. mAP averages over classes and thresholds. At the 2 m
threshold the matched pairs also give the true-positive errors, each averaged over the recall
range the detector reaches: ATE (centre distance, metres), ASE (1 - IoU of the two boxes aligned
on centre and heading) and AOE (smallest yaw difference, radians; not computed for
traffic cones, whose heading means nothing).

This follows ``nuscenes-devkit`` (``eval/detection/algo.py`` ``accumulate``/``calc_ap``/
``calc_tp``, ``evaluate.py``, the ``detection_cvpr_2019`` config) step by step, including its
tie-breaking. Where it differs, on purpose:

* No velocity or attribute errors (mAVE, mAAE) and so no NDS: the synthetic labels have neither.
* A class with no ground truth in the data is left out of mAP and the mean errors (nuScenes
  scores it AP 0 and errors 1); its AP is ``None``. The INT8-vs-FP32 agreement, where the FP32
  predictions play the ground truth, would otherwise be punished for classes FP32 never found.
* The evaluation range per class (:data:`CLASS_RANGE_M`) is nuScenes' for the classes it has
  (cyclist as bicycle) and 40 m for traffic lights, which nuScenes does not label.
* Ground truth is filtered by visibility in the cameras (:mod:`vitdeploy.data.boxes3d`) instead of
  by lidar/radar points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vitdeploy.errors import DataError
from vitdeploy.heads.boxes3d import Boxes3D

DISTANCE_THRESHOLDS_M = (0.5, 1.0, 2.0, 4.0)
#: Evaluation range (distance of the box centre from the ego origin in the ground plane, metres).
CLASS_RANGE_M = {"car": 50.0, "truck": 50.0, "pedestrian": 40.0, "cyclist": 40.0, "traffic_cone": 30.0,
                 "traffic_light": 40.0}
_RECALL = np.linspace(0.0, 1.0, 101)
_ERRORS = ("trans_err", "scale_err", "orient_err")


@dataclass(frozen=True)
class Detection3DConfig:
    """What is scored: class names in label order, their ranges (metres; a class not listed is
    scored at any distance), the thresholds, and the classes whose orientation is not scored
    (``orientation_free``) or is scored modulo 180 degrees (``orientation_symmetric``)."""

    class_names: tuple[str, ...]
    class_range_m: dict[str, float] = field(default_factory=lambda: dict(CLASS_RANGE_M))
    distance_thresholds_m: tuple[float, ...] = DISTANCE_THRESHOLDS_M
    tp_threshold_m: float = 2.0
    min_recall: float = 0.1
    min_precision: float = 0.1
    max_boxes_per_sample: int = 500
    orientation_free: tuple[str, ...] = ("traffic_cone",)
    orientation_symmetric: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClassScores3D:
    """One class: AP per distance threshold and their mean; the true-positive errors at the TP
    threshold (``None``: not defined for this class). ``None`` AP: no ground truth."""

    ap_per_threshold: dict[float, float | None]
    ap: float | None
    ate: float | None
    ase: float | None
    aoe: float | None
    ground_truth: int
    predictions: int


@dataclass(frozen=True)
class Detection3DScores:
    map: float | None
    mate: float | None
    mase: float | None
    maoe: float | None
    per_class: dict[str, ClassScores3D]
    frame_sets: int
    ground_truth_boxes: int
    predicted_boxes: int


@dataclass
class _Curve:
    """One class at one threshold: ``precision`` and ``confidence`` at the 101 recall points,
    and the cumulative-mean errors at the same points."""

    precision: np.ndarray
    confidence: np.ndarray
    errors: dict[str, np.ndarray]

    @classmethod
    def no_predictions(cls) -> _Curve:
        return cls(np.zeros(101), np.zeros(101), {k: np.ones(101) for k in _ERRORS})

    @property
    def max_recall_index(self) -> int:
        nonzero = np.flatnonzero(self.confidence)
        return int(nonzero[-1]) if len(nonzero) else 0


def yaw_difference(a: np.ndarray | float, b: np.ndarray | float, *, period: float = 2 * math.pi) -> np.ndarray:
    """Smallest absolute difference of yaw ``a`` and ``b`` (radians) modulo ``period``, in [0, pi]."""
    diff = (np.asarray(a, np.float64) - np.asarray(b, np.float64) + period / 2) % period - period / 2
    return np.abs(np.where(diff > math.pi, diff - 2 * math.pi, diff))


def aligned_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes of sizes ``a`` and ``b`` (..., 3) metres placed on one centre and heading."""
    inter = np.prod(np.minimum(a, b), axis=-1)
    return inter / (np.prod(a, axis=-1) + np.prod(b, axis=-1) - inter)


def _cummean(x: np.ndarray) -> np.ndarray:
    if np.isnan(x).all():
        return np.ones(len(x))
    count = np.cumsum(~np.isnan(x))
    total = np.nancumsum(x)
    return np.divide(total, count, out=np.zeros_like(total), where=count != 0)


def _accumulate(gts: list[Boxes3D], preds: list[Boxes3D], *, threshold: float, period: float) -> _Curve:
    """nuScenes' ``accumulate`` for one class (the boxes are already of that class and in range)."""
    npos = sum(len(g) for g in gts)
    if npos == 0:
        return _Curve.no_predictions()
    sample = np.concatenate([np.full(len(p), i) for i, p in enumerate(preds)]) if preds else np.zeros(0, int)
    index = np.concatenate([np.arange(len(p)) for p in preds]) if preds else np.zeros(0, int)
    scores = np.concatenate([p.scores for p in preds]).astype(np.float64) if preds else np.zeros(0)
    # descending score, ties to the later box: nuScenes sorts (score, position) pairs and reverses
    order = np.lexsort((np.arange(len(scores)), scores))[::-1]
    taken = [np.zeros(len(g), bool) for g in gts]
    tp = np.zeros(len(order))
    conf = scores[order]
    matched_conf, errs = [], {k: [] for k in _ERRORS}
    for n, j in enumerate(order):
        s, k = int(sample[j]), int(index[j])
        gt, pred = gts[s], preds[s]
        if not len(gt):
            continue
        dist = np.hypot(*(gt.centers[:, :2] - pred.centers[k, :2]).T)
        dist[taken[s]] = np.inf
        best = int(np.argmin(dist))  # the first of equal distances, as nuScenes' strict '<'
        if dist[best] < threshold:
            taken[s][best] = True
            tp[n] = 1
            matched_conf.append(conf[n])
            errs["trans_err"].append(dist[best])
            errs["scale_err"].append(1.0 - float(aligned_iou(gt.sizes[best], pred.sizes[k])))
            errs["orient_err"].append(float(yaw_difference(gt.yaws[best], pred.yaws[k], period=period)))
    if not matched_conf:
        return _Curve.no_predictions()
    tps, fps = np.cumsum(tp), np.cumsum(1 - tp)
    precision = np.interp(_RECALL, tps / npos, tps / (tps + fps), right=0)
    confidence = np.interp(_RECALL, tps / npos, conf, right=0)
    mc = np.asarray(matched_conf)
    errors = {key: np.interp(confidence[::-1], mc[::-1], _cummean(np.asarray(v, np.float64))[::-1])[::-1]
              for key, v in errs.items()}
    return _Curve(precision, confidence, errors)


def _ap(curve: _Curve, cfg: Detection3DConfig) -> float:
    prec = curve.precision[round(100 * cfg.min_recall) + 1:] - cfg.min_precision
    return float(np.mean(np.clip(prec, 0.0, None))) / (1.0 - cfg.min_precision)


def _tp_error(curve: _Curve, cfg: Detection3DConfig, key: str) -> float:
    first, last = round(100 * cfg.min_recall) + 1, curve.max_recall_index
    return 1.0 if last < first else float(np.mean(curve.errors[key][first:last + 1]))


def _select(boxes: Boxes3D, label: int, max_range: float) -> Boxes3D:
    keep = np.flatnonzero((boxes.labels == label) & (boxes.ego_distance() <= max_range))
    return Boxes3D(boxes.centers[keep], boxes.sizes[keep], boxes.yaws[keep], boxes.labels[keep], boxes.scores[keep])


def detection3d_scores(predictions: Sequence[Boxes3D], ground_truth: Sequence[Boxes3D], *,
                       config: Detection3DConfig) -> Detection3DScores:
    """Score per-frame-set ``predictions`` (with scores) against ``ground_truth`` (scores ignored);
    the i-th prediction belongs to the i-th ground truth frame set."""
    if len(predictions) != len(ground_truth):
        raise DataError(f"{len(predictions)} predicted frame sets but {len(ground_truth)} ground-truth frame sets; "
                        "give one of each per frame set")
    for i, p in enumerate(predictions):
        if len(p) > config.max_boxes_per_sample:
            raise DataError(f"frame set {i} has {len(p)} predicted boxes; at most {config.max_boxes_per_sample} "
                            "are scored (nuScenes' limit): keep the best-scoring ones")
    per_class: dict[str, ClassScores3D] = {}
    for label, name in enumerate(config.class_names):
        max_range = config.class_range_m.get(name, math.inf)
        gts = [_select(g, label, max_range) for g in ground_truth]
        preds = [_select(p, label, max_range) for p in predictions]
        n_gt, n_pred = sum(map(len, gts)), sum(map(len, preds))
        if n_gt == 0:
            per_class[name] = ClassScores3D({t: None for t in config.distance_thresholds_m}, None, None, None, None,
                                            0, n_pred)
            continue
        period = math.pi if name in config.orientation_symmetric else 2 * math.pi
        curves = {t: _accumulate(gts, preds, threshold=t, period=period)
                  for t in {*config.distance_thresholds_m, config.tp_threshold_m}}
        aps = {t: _ap(curves[t], config) for t in config.distance_thresholds_m}
        tp_curve = curves[config.tp_threshold_m]
        aoe = None if name in config.orientation_free else _tp_error(tp_curve, config, "orient_err")
        per_class[name] = ClassScores3D(aps, float(np.mean(list(aps.values()))), _tp_error(tp_curve, config, "trans_err"),
                                        _tp_error(tp_curve, config, "scale_err"), aoe, n_gt, n_pred)
    scored = [c for c in per_class.values() if c.ap is not None]

    def mean(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return float(np.mean(kept)) if kept else None

    return Detection3DScores(
        map=mean([c.ap for c in scored]), mate=mean([c.ate for c in scored]), mase=mean([c.ase for c in scored]),
        maoe=mean([c.aoe for c in scored]), per_class=per_class, frame_sets=len(ground_truth),
        ground_truth_boxes=sum(map(len, ground_truth)), predicted_boxes=sum(map(len, predictions)))
