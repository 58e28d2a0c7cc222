"""``cls``, ``cait`` and ``tab``: image-level class logits (Task Attention: several tasks at once)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vitdeploy.bundle.manifest import CAMERA_AXIS, TensorSpec
from vitdeploy.heads.agreement import AgreementFn, top1_task_agreement
from vitdeploy.heads.base import Head
from vitdeploy.heads.decode import decode_classes
from vitdeploy.heads.letterbox import Letterbox
from vitdeploy.heads.results import CameraResult, class_name
from vitdeploy.heads.truth import ClassificationTruth, TruthScorer

#: The most classes a run result lists per camera.
MAX_TOP_K = 5


class ClassificationHead(Head):
    """``cls``: ``logits`` (cameras, classes) from the class token."""

    kind = "cls"
    agreement_metric = "top1"
    eval_task = "classification"

    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec("logits", "float32", [CAMERA_AXIS, self.num_classes or "classes"], "class logits")]

    def config_from(self, shapes: Mapping[str, Sequence[int | str]]) -> dict:
        logits = list(shapes.get("logits", ()))
        return {"num_classes": logits[1]} if len(logits) == 2 and isinstance(logits[1], int) else {}

    def decode(self, outputs: dict[str, np.ndarray], *, letterboxes: Sequence[Letterbox] | None = None,
               score_threshold: float = 0.3, top_k: int = 100) -> list[CameraResult]:
        self.check_present(outputs, needed=("logits",))
        top = decode_classes(outputs["logits"], top_k=min(top_k, MAX_TOP_K))
        return [CameraResult(classes=[(class_name(self.class_names, c), p) for c, p in cam]) for cam in top]

    def compare_to(self, reference: dict[str, np.ndarray]) -> AgreementFn:
        self.check_present(reference, needed=("logits",))
        return top1_task_agreement(reference)

    def truth_scorer(self, *, class_map: np.ndarray, masks: bool = False) -> TruthScorer:
        return ClassificationTruth(class_map=class_map)


class CaitClassificationHead(ClassificationHead):
    """``cait``: ``logits`` (cameras, classes) from CaiT class-attention layers; read as ``cls``."""

    kind = "cait"


class MultiTaskClassificationHead(Head):
    """``tab``: ``logits`` (cameras, all tasks' classes) concatenated in task order, and
    ``logits_<task>`` (cameras, the task's classes) per task (``config["tasks"]``)."""

    kind = "tab"
    runnable = False
    agreement_metric = "top1"

    def tasks(self) -> list[tuple[str, int]]:
        """(name, classes) of each task, in order."""
        return [(t["name"], int(t["num_classes"])) for t in self.config.get("tasks", [])]

    def outputs(self) -> list[TensorSpec]:
        tasks = self.tasks()
        total = sum(n for _, n in tasks) or "classes"
        return [TensorSpec("logits", "float32", [CAMERA_AXIS, total], "logits of all tasks, concatenated in task order"),
                *(TensorSpec(f"logits_{name}", "float32", [CAMERA_AXIS, n], f"class logits of task {name!r}")
                  for name, n in tasks)]

    def compare_to(self, reference: dict[str, np.ndarray]) -> AgreementFn:
        self.check_present(reference, needed=("logits",))
        return top1_task_agreement(reference, tasks=self.tasks() or [("all", int(reference["logits"].shape[-1]))])

    def why_not(self, stage: str) -> str:
        return "a Task Attention model answers several classification tasks at once; its run and eval are not built yet"
