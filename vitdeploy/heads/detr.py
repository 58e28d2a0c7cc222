"""``detr`` and ``mask``: object queries, each with a class distribution and a box or a mask."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vitdeploy.bundle.head import BoxFormat, ScoreActivation
from vitdeploy.bundle.manifest import CAMERA_AXIS, TensorSpec
from vitdeploy.heads.agreement import (
    AgreementFn,
    TaskAgreement,
    detection_agreement,
    mask_agreement,
    recorded_detection_agreement,
)
from vitdeploy.heads.base import Head
from vitdeploy.heads.decode import class_scores, decode_boxes, decode_masks
from vitdeploy.heads.letterbox import Letterbox
from vitdeploy.heads.results import CameraResult, Detections
from vitdeploy.heads.truth import DetectionTruth, TruthScorer


class QueryHead(Head):
    """What detection and instance-mask heads share: ``logits`` (cameras, queries, classes [+ 1])
    read with the spec's score activation."""

    default_scores = ScoreActivation.SOFTMAX
    eval_task = "detection"

    def _queries(self) -> int | str:
        return int(self.config["num_queries"]) if "num_queries" in self.config else "queries"

    def _logits(self) -> TensorSpec:
        if self.spec.scores is ScoreActivation.SOFTMAX:
            classes: int | str = self.num_classes + 1 if self.num_classes else "classes + 1"
            meaning = "class logits per query; the last class is 'no object'"
        else:
            classes = self.num_classes or "classes"
            meaning = "class logits per query, one sigmoid score per class (no 'no object' class)"
        return TensorSpec("logits", "float32", [CAMERA_AXIS, self._queries(), classes], meaning)

    def config_from(self, shapes: Mapping[str, Sequence[int | str]]) -> dict:
        logits = list(shapes.get("logits", ()))
        if len(logits) != 3 or not all(isinstance(d, int) for d in logits[1:]):
            return {}
        extra = 1 if self.spec.scores is ScoreActivation.SOFTMAX else 0
        return {"num_queries": logits[1], "num_classes": logits[2] - extra}

    def results_agreement(self, reference: Sequence[CameraResult],
                          candidate: Sequence[CameraResult]) -> TaskAgreement:
        """Box mAP of ``candidate`` against ``reference``'s confident boxes (instance-mask heads
        too: their boxes are the masks' extents; the masks themselves are not recorded)."""
        empty = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
        ref = [r.detections if r.detections is not None else empty for r in reference]
        cand = [c.detections if c.detections is not None else empty for c in candidate]
        classes = self.num_classes or 1 + max((int(d.labels.max()) for d in ref + cand if len(d)), default=0)
        return recorded_detection_agreement(ref, cand, num_classes=classes, image_size=self.image_size)

    def _classes_of(self, logits: np.ndarray) -> int:
        """The class count, from the config or else from the logits themselves."""
        extra = 1 if self.spec.scores is ScoreActivation.SOFTMAX else 0
        return self.num_classes or int(logits.shape[-1]) - extra


class DetectionHead(QueryHead):
    """``detr``: ``logits`` and ``boxes`` (cameras, queries, 4) in the spec's box format."""

    kind = "detr"
    agreement_metric = "detection_map"
    unordered_outputs = ("logits", "boxes")
    default_boxes = BoxFormat()

    def outputs(self) -> list[TensorSpec]:
        boxes = self.spec.boxes
        return [self._logits(),
                TensorSpec("boxes", "float32", [CAMERA_AXIS, self._queries(), 4],
                           f"{boxes.coordinates} per query {boxes.extent}")]

    def detections(self, outputs: dict[str, np.ndarray], letterboxes: Sequence[Letterbox] | None = None, *,
                   score_threshold: float, top_k: int = 100) -> list[Detections]:
        self.check_present(outputs, needed=("logits", "boxes"))
        return decode_boxes(outputs["logits"], outputs["boxes"], activation=self.spec.scores,
                            box_format=self.spec.boxes, input_size=self.image_size, letterboxes=letterboxes,
                            score_threshold=score_threshold, top_k=top_k)

    def decode(self, outputs: dict[str, np.ndarray], *, letterboxes: Sequence[Letterbox] | None = None,
               score_threshold: float = 0.3, top_k: int = 100) -> list[CameraResult]:
        return [CameraResult(detections=d) for d in self.detections(outputs, letterboxes,
                                                                    score_threshold=score_threshold, top_k=top_k)]

    def compare_to(self, reference: dict[str, np.ndarray]) -> AgreementFn:
        return detection_agreement(reference, decode=self.detections,
                                   num_classes=self._classes_of(reference["logits"]), image_size=self.image_size)

    def truth_scorer(self, *, class_map: np.ndarray, masks: bool = False) -> TruthScorer:
        return DetectionTruth(num_classes=self.num_classes, class_map=class_map, decode=self.detections)


class InstanceMaskHead(QueryHead):
    """``mask`` (MaskFormer-style): ``logits`` and ``masks`` (cameras, queries, H / stride, W /
    stride) of mask logits."""

    kind = "mask"
    agreement_metric = "mask_iou"
    unordered_outputs = ("logits", "masks")
    instance_masks = True

    def outputs(self) -> list[TensorSpec]:
        stride = self.config.get("mask_stride")
        h, w = self.image_size
        grid: list[int | str] = [h // int(stride), w // int(stride)] if stride else ["mask_height", "mask_width"]
        return [self._logits(),
                TensorSpec("masks", "float32", [CAMERA_AXIS, self._queries(), *grid],
                           "mask logits per query at the mask stride (sigmoid > 0.5 is the mask)")]

    def config_from(self, shapes: Mapping[str, Sequence[int | str]]) -> dict:
        config = super().config_from(shapes)
        masks = list(shapes.get("masks", ()))
        h, w = self.image_size
        if len(masks) == 4 and all(isinstance(d, int) and d > 0 for d in masks[2:]) and h % masks[2] == 0 \
                and h // masks[2] * masks[3] == w:
            config["mask_stride"] = h // masks[2]
        return config

    def detections(self, outputs: dict[str, np.ndarray], letterboxes: Sequence[Letterbox] | None = None, *,
                   score_threshold: float, top_k: int = 50) -> list[Detections]:
        """Instances with masks at frame size (model-input size without ``letterboxes``); their boxes
        are the masks' extents."""
        self.check_present(outputs, needed=("logits", "masks"))
        return decode_masks(outputs["logits"], outputs["masks"], activation=self.spec.scores,
                            input_size=self.image_size, letterboxes=letterboxes, score_threshold=score_threshold,
                            top_k=top_k)

    def decode(self, outputs: dict[str, np.ndarray], *, letterboxes: Sequence[Letterbox] | None = None,
               score_threshold: float = 0.3, top_k: int = 100) -> list[CameraResult]:
        return [CameraResult(detections=d) for d in self.detections(outputs, letterboxes,
                                                                    score_threshold=score_threshold, top_k=top_k)]

    def compare_to(self, reference: dict[str, np.ndarray]) -> AgreementFn:
        self.check_present(reference, needed=("logits", "masks"))
        best = class_scores(reference["logits"], self.spec.scores).max(axis=-1)
        return mask_agreement(reference, query_scores=best)

    def truth_scorer(self, *, class_map: np.ndarray, masks: bool = False) -> TruthScorer:
        return DetectionTruth(num_classes=self.num_classes, class_map=class_map, decode=self.detections,
                              semantic=masks)
