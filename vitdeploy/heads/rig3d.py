"""``rig3d``: a rig-level head (Perceiver-IO queries over all cameras) answering in the ego frame.

The graph takes a whole frame set, ``images`` (cameras, 3, H, W) with the cameras' geometry
(``intrinsics`` (cameras, 3, 3), ``cam_to_ego`` (cameras, 4, 4)), and answers once for the set:
``logits`` (1, queries, classes + 1) with "no object" last and ``boxes3d`` (1, queries, 8) = x, y,
z, length, width, height (metres, ego frame), sin and cos of the yaw. An object two cameras see is
one query's box, so decoding is a threshold and a top-k: nothing is merged across cameras.

The head's config records ``num_classes``, ``num_queries``, ``max_cameras`` (the camera slots:
camera i of the feed is the model's learned camera i) and ``geometry``: the cameras the bundle
was exported with (the synthetic rig's, at the model's input size), one dict per camera as
``vitdeploy.data.geometry.CameraGeometry.to_dict`` writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from vitdeploy.bundle.head import HeadSpec, ScoreActivation
from vitdeploy.bundle.manifest import TensorSpec
from vitdeploy.errors import BundleError, DataError
from vitdeploy.heads.agreement import GROUND_TRUTH_SCORE, PREDICTION_SCORE, AgreementFn, TaskAgreement
from vitdeploy.heads.base import Head
from vitdeploy.heads.boxes3d import Boxes3D
from vitdeploy.heads.decode import select, softmax
from vitdeploy.heads.letterbox import Letterbox
from vitdeploy.heads.metrics3d import Detection3DConfig, Detection3DScores, detection3d_scores
from vitdeploy.heads.truth import SCORE_FLOOR, EvalScores, TruthScorer

#: The values of a ``boxes3d`` row, in order.
BOX3D_VALUES = ("x", "y", "z", "length", "width", "height", "sin_yaw", "cos_yaw")
#: The graph inputs besides the images: the geometry, computed once per rig on the host.
GEOMETRY_INPUTS = ("intrinsics", "cam_to_ego")


def decode_boxes3d(logits: np.ndarray, boxes3d: np.ndarray, *, score_threshold: float = 0.3,
                   top_k: int = 100) -> list[Boxes3D]:
    """logits (S, Q, C+1) with "no object" last, boxes3d (S, Q, 8) as :data:`BOX3D_VALUES` -> one
    :class:`Boxes3D` per frame set (S is 1 for a graph run on one frame set), best score first."""
    scores = softmax(logits)[..., :-1]
    out = []
    for i in range(logits.shape[0]):
        keep, best, labels = select(scores[i], activation=ScoreActivation.SOFTMAX, score_threshold=score_threshold,
                                    top_k=top_k)
        b = boxes3d[i, keep].astype(np.float32)
        out.append(Boxes3D(centers=b[:, 0:3], sizes=b[:, 3:6], yaws=np.arctan2(b[:, 6], b[:, 7]),
                           labels=labels.astype(np.int64), scores=best.astype(np.float32)))
    return out


class LabelledSet(Protocol):
    """One labelled frame set as an eval dataset gives it: ``boxes`` its 3D ground truth (labels
    are dataset class indices)."""

    boxes: Boxes3D


class Rig3dHead(Head):
    """``rig3d``: ``logits`` (1, queries, classes + 1) and ``boxes3d`` (1, queries, 8) per frame set."""

    kind = "rig3d"
    per_camera = False
    agreement_metric = "detection3d_map"
    eval_task = "detection3d"
    unordered_outputs = ("logits", "boxes3d")
    default_scores = ScoreActivation.SOFTMAX
    geometry_inputs = GEOMETRY_INPUTS
    high_precision_layers = {
        "head.rays.mlp": "ray encoding: metric geometry in, position code out; small, and its error moves every "
                         "token's position",
        "head.box_embeds.*.fc2": "3D box regression (metres): INT8 steps are centimetres to decimetres",
    }

    def __init__(self, spec: HeadSpec, *, class_names: Sequence[str] = (), image_size: tuple[int, int]):
        super().__init__(spec, class_names=class_names, image_size=image_size)
        if self.spec.scores is not ScoreActivation.SOFTMAX:
            raise BundleError("rig3d heads read softmax scores with a 'no object' class; drop 'scores'")

    # ---- what the outputs are -----------------------------------------------------------------
    @property
    def camera_slots(self) -> int | None:
        return int(self.config["max_cameras"]) if "max_cameras" in self.config else None

    def exported_geometry(self) -> list[dict]:
        return [dict(c) for c in self.config.get("geometry", [])]

    def with_geometry(self, geometry: Sequence[dict]) -> Rig3dHead:
        """This head recording ``geometry`` (``CameraGeometry.to_dict`` per camera) as the export's."""
        spec = replace(self.spec, config={**self.config, "geometry": [dict(c) for c in geometry]})
        return Rig3dHead(spec, class_names=self.class_names, image_size=self.image_size)

    def describe(self) -> str:
        return f"{self.kind} (softmax scores; ego-frame 3D boxes, one answer per frame set)"

    def outputs(self) -> list[TensorSpec]:
        q: int | str = int(self.config["num_queries"]) if "num_queries" in self.config else "queries"
        c: int | str = self.num_classes + 1 if self.num_classes else "classes + 1"
        return [TensorSpec("logits", "float32", [1, q, c],
                           "class logits per query, one frame set; the last class is 'no object'"),
                TensorSpec("boxes3d", "float32", [1, q, len(BOX3D_VALUES)],
                           "per query, ego frame: " + ", ".join(BOX3D_VALUES) + " (metres; yaw = atan2(sin, cos))")]

    def config_from(self, shapes: Mapping[str, Sequence[int | str]]) -> dict:
        logits = list(shapes.get("logits", ()))
        if len(logits) != 3 or not all(isinstance(d, int) for d in logits[1:]):
            return {}
        return {"num_queries": logits[1], "num_classes": logits[2] - 1}

    # ---- the stages ---------------------------------------------------------------------------
    def boxes(self, outputs: dict[str, np.ndarray], *, score_threshold: float, top_k: int = 100) -> list[Boxes3D]:
        """One :class:`Boxes3D` per frame set of ``outputs`` (name -> (S, ...))."""
        self.check_present(outputs, needed=("logits", "boxes3d"))
        return decode_boxes3d(outputs["logits"], outputs["boxes3d"], score_threshold=score_threshold, top_k=top_k)

    def decode(self, outputs: dict[str, np.ndarray], *, letterboxes: Sequence[Letterbox] | None = None,
               score_threshold: float = 0.3, top_k: int = 100) -> Boxes3D:
        """The set's boxes in the ego frame (the letterboxes do not move them: the geometry feed
        already carries each camera's resize and padding)."""
        return self.boxes(outputs, score_threshold=score_threshold, top_k=top_k)[0]

    def metric_config(self) -> Detection3DConfig:
        names = self.class_names or tuple(str(i) for i in range(self.num_classes))
        return Detection3DConfig(class_names=tuple(names))

    def compare_to(self, reference: dict[str, np.ndarray]) -> AgreementFn:
        """nuScenes mAP (centre distance 0.5/1/2/4 m) of the candidate's boxes (score >=
        ``PREDICTION_SCORE``) against the FP32 boxes (score >= ``GROUND_TRUTH_SCORE``) of the same
        frame sets; mATE/mASE/mAOE in the details."""
        truth = self.boxes(reference, score_threshold=GROUND_TRUTH_SCORE)
        config = self.metric_config()
        desc = (f"nuScenes mAP (centre distance 0.5/1/2/4 m) vs FP32 boxes (FP32 score >= {GROUND_TRUTH_SCORE} as "
                f"ground truth, predictions at score >= {PREDICTION_SCORE})")

        def score(candidate: dict[str, np.ndarray]) -> TaskAgreement:
            s = detection3d_scores(self.boxes(candidate, score_threshold=PREDICTION_SCORE), truth, config=config)
            details = {"mate_m": s.mate, "mase": s.mase, "maoe_rad": s.maoe, "ground_truth_boxes": s.ground_truth_boxes,
                       "predicted_boxes": s.predicted_boxes, "frame_sets": s.frame_sets}
            if s.map is None:
                return TaskAgreement("detection3d_map", desc, None, details,
                                     reason=f"FP32 finds nothing with score >= {GROUND_TRUTH_SCORE} on the held-out "
                                            "frame sets, so there is no ground truth to agree with (an untrained "
                                            "model?)")
            return TaskAgreement("detection3d_map", desc, s.map, details)

        return score

    def truth_scorer(self, *, class_map: np.ndarray, masks: bool = False) -> TruthScorer:
        return Rig3dTruth(head=self, class_map=class_map)


class Rig3dTruth(TruthScorer):
    """nuScenes mAP, mATE, mASE and mAOE of a rig head's boxes against labelled frame sets."""

    def __init__(self, *, head: Rig3dHead, class_map: np.ndarray):
        super().__init__(class_map=class_map)
        self.head = head
        self.predictions: list[Boxes3D] = []
        self.ground_truth: list[Boxes3D] = []

    def add(self, outputs: dict[str, np.ndarray], letterboxes: Sequence[Letterbox],
            images: Sequence[LabelledSet]) -> None:
        """``outputs`` of ``images`` (frame sets, in order: one output row each)."""
        config = self.head.metric_config()
        preds = self.head.boxes(outputs, score_threshold=SCORE_FLOOR, top_k=config.max_boxes_per_sample)
        if len(preds) != len(images):
            raise DataError(f"{len(preds)} answers for {len(images)} labelled frame sets")
        for pred, labelled in zip(preds, images, strict=True):
            gt = labelled.boxes
            self.ground_truth.append(Boxes3D(gt.centers, gt.sizes, gt.yaws, self.class_map[gt.labels], gt.scores))
            self.predictions.append(pred)
        self.images += len(images)

    def detection3d(self) -> Detection3DScores:
        return detection3d_scores(self.predictions, self.ground_truth, config=self.head.metric_config())

    def scores(self) -> EvalScores:
        s = self.detection3d()
        return EvalScores(images=self.images, map3d=s.map, mate=s.mate, mase=s.mase, maoe=s.maoe)
