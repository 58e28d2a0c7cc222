"""The ``Head`` type: one class per head kind, asked by every stage (DESIGN.md).

A ``Head`` is made from what the manifest records (``HeadSpec``, class names, input size) and
answers, for its kind: what each output is (name, shape with the camera axis, meaning), how raw
outputs decode into results, how a low-precision graph's outputs are compared with FP32
(calibration, golden checks) and how decoded outputs are scored against ground truth (eval).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import ClassVar

import numpy as np

from vitdeploy.bundle.head import BoxFormat, HeadSpec, ScoreActivation
from vitdeploy.bundle.manifest import TensorSpec
from vitdeploy.errors import BundleError, DataError
from vitdeploy.heads.agreement import AgreementFn, TaskAgreement
from vitdeploy.heads.letterbox import Letterbox
from vitdeploy.heads.results import CameraResult, SetResult
from vitdeploy.heads.truth import TruthScorer

#: What ``decode`` gives: one result per camera, or (rig-level heads) one for the whole set.
Decoded = list[CameraResult] | SetResult


def _shapes(shapes: Mapping[str, Sequence[int | str]]) -> str:
    return ", ".join(f"{name} [{', '.join(str(d) for d in shape)}]" for name, shape in shapes.items())


class Head:
    """Base of the head kinds. Subclasses set the class attributes and implement ``outputs`` and
    whichever of ``decode``, ``compare_to`` and ``truth_scorer`` their kind supports.

    ``per_camera``: the batch axis is the camera axis and ``decode`` gives one ``CameraResult`` per
    camera; False for a rig-level head, whose ``decode`` gives one ``SetResult`` per frame set.
    ``runnable``: ``decode`` works (`vitdeploy run`). ``agreement_metric``: what ``compare_to``
    measures (None: no task-level agreement). ``eval_task``: the kind of labelled data ``vitdeploy
    eval`` scores it on ("detection" or "classification"; None: not evaluable). ``prompted``: the
    model takes prompts beside the image (exported as an image encoder and a prompt decoder).
    ``instance_masks``: its results carry a mask per instance (eval then also scores mIoU).
    ``unordered_outputs``: outputs whose rows (axis 1: DETR-style queries) are a set: a lower
    precision may reorder or swap rows without changing the result, so an element-by-element
    comparison with FP32 does not judge them; the task-level agreement does (the golden check).
    """

    kind: ClassVar[str]
    per_camera: ClassVar[bool] = True
    runnable: ClassVar[bool] = True
    agreement_metric: ClassVar[str | None] = None
    eval_task: ClassVar[str | None] = None
    prompted: ClassVar[bool] = False
    instance_masks: ClassVar[bool] = False
    unordered_outputs: ClassVar[tuple[str, ...]] = ()
    #: Graph inputs besides the images that carry the cameras' geometry (rig-level heads), fed
    #: once per rig from the rig file (``vitdeploy.runtime.rig_geometry``).
    geometry_inputs: ClassVar[tuple[str, ...]] = ()
    #: INT8: layer patterns (as ``--exclude`` takes them) this kind keeps in high precision, and why.
    high_precision_layers: ClassVar[dict[str, str]] = {}
    #: Defaults for a spec that leaves them out (e.g. a migrated schema-1 manifest).
    default_scores: ClassVar[ScoreActivation | None] = None
    default_boxes: ClassVar[BoxFormat | None] = None

    def __init__(self, spec: HeadSpec, *, class_names: Sequence[str] = (), image_size: tuple[int, int]):
        if spec.kind != self.kind:
            raise BundleError(f"a {spec.kind!r} head spec given to the {self.kind!r} head type")
        if spec.scores is not None and self.default_scores is None:
            raise BundleError(f"{self.kind} heads have no class scores to read as {spec.scores.value}; drop 'scores'")
        if spec.boxes is not None and self.default_boxes is None:
            raise BundleError(f"{self.kind} heads have no box output; drop 'boxes'")
        self.spec = HeadSpec(kind=spec.kind, scores=spec.scores or self.default_scores,
                             boxes=spec.boxes or self.default_boxes, config=dict(spec.config))
        self.class_names = tuple(class_names)
        self.image_size = (int(image_size[0]), int(image_size[1]))

    # ---- what the outputs are -----------------------------------------------------------------
    @property
    def config(self) -> dict:
        return self.spec.config

    @property
    def num_classes(self) -> int:
        """Classes the head predicts (without a "no object" class)."""
        return int(self.config.get("num_classes") or len(self.class_names))

    @property
    def camera_slots(self) -> int | None:
        """The most cameras the model itself takes (a rig-level head's learned camera slots, from
        its config); None: any number (per-camera heads)."""
        return None

    def exported_geometry(self) -> list[dict]:
        """The camera geometry the bundle was exported with (rig-level heads; one dict per camera,
        as ``vitdeploy.data.geometry.CameraGeometry.to_dict`` writes it); empty where none."""
        return []

    def with_geometry(self, geometry: Sequence[dict]) -> Head:
        """This head recording ``geometry`` as the one its bundle was exported with."""
        raise BundleError(f"{self.kind} heads answer per camera and take no camera geometry")

    def describe(self) -> str:
        """'detr (softmax scores; boxes cx, cy, w, h in 0..1 of the model input)' and the like."""
        parts = []
        if self.spec.scores is not None:
            parts.append(f"{self.spec.scores.value} scores")
        if self.spec.boxes is not None:
            parts.append(f"boxes {self.spec.boxes.coordinates} {self.spec.boxes.extent}")
        return self.kind + (f" ({'; '.join(parts)})" if parts else "")

    def outputs(self) -> list[TensorSpec]:
        """Every output of the kind: name, float32, shape (the camera axis first for per-camera
        heads; an axis the config does not fix is named), and its meaning."""
        raise NotImplementedError

    def output(self, name: str) -> TensorSpec:
        for spec in self.outputs():
            if spec.name == name:
                return spec
        raise BundleError(f"{self.kind} heads have no output {name!r}; they have {[s.name for s in self.outputs()]}")

    def meaning(self, name: str) -> str:
        return self.output(name).meaning

    def check_outputs(self, shapes: Mapping[str, Sequence[int | str]]) -> None:
        """Raise a ``BundleError`` unless ``shapes`` (output name -> shape) has the kind's outputs
        with its shapes (named axes match any size); the message lists what was expected."""
        expected = {s.name: s.shape for s in self.outputs()}
        got = {name: list(shape) for name, shape in shapes.items()}
        wrong = sorted(set(expected) ^ set(got))
        for name in set(expected) & set(got):
            want, have = expected[name], got[name]
            if len(want) != len(have) or any(isinstance(w, int) and isinstance(h, int) and w != h
                                             for w, h in zip(want, have, strict=True)):
                wrong.append(name)
        if wrong:
            raise BundleError(f"the outputs do not fit a {self.describe()} head: expected {_shapes(expected)}; "
                              f"got {_shapes(got)}")

    def completed(self, shapes: Mapping[str, Sequence[int | str]]) -> Head:
        """This head with what its config leaves open (class count, query count, mask stride) read
        from ``shapes`` (output name -> shape, camera axis first) of a model vitdeploy did not make
        (a user's factory, an imported ONNX). What the config says stays, so ``check_outputs`` then
        catches outputs that contradict it."""
        config = {**self.config_from(shapes), **self.config}
        return type(self)(replace(self.spec, config=config), class_names=self.class_names, image_size=self.image_size)

    def config_from(self, shapes: Mapping[str, Sequence[int | str]]) -> dict:
        """The config entries that ``shapes`` fix (``completed``); none by default."""
        return {}

    def check_present(self, outputs: Mapping[str, np.ndarray], *, needed: Sequence[str]) -> None:
        missing = [n for n in needed if n not in outputs]
        if missing:
            raise BundleError(f"the {self.kind} head's outputs {list(needed)} are expected, the backend gave "
                              f"{sorted(outputs)}; re-export the bundle")

    # ---- the stages ---------------------------------------------------------------------------
    def decode(self, outputs: dict[str, np.ndarray], *, letterboxes: Sequence[Letterbox] | None = None,
               score_threshold: float = 0.3, top_k: int = 100) -> Decoded:
        """Raw outputs of one batch (name -> (N, ...)) -> results: boxes in frame pixels (model-input
        pixels without ``letterboxes``), detections filtered by ``score_threshold`` (0..1) and
        ``top_k``, classes top-``min(top_k, 5)``."""
        raise BundleError(f"`vitdeploy run` cannot decode {self.kind} heads ({self.why_not('run')})")

    def compare_to(self, reference: dict[str, np.ndarray]) -> AgreementFn:
        """A function scoring candidate outputs against ``reference`` (FP32 outputs of the same
        frames, name -> (N, ...)); built once, so sensitivity analysis scores many candidates cheaply."""
        raise BundleError(f"no task-level agreement is defined for {self.kind} heads ({self.why_not('agreement')})")

    def agreement(self, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> TaskAgreement | None:
        """Task-level agreement of ``candidate`` with ``reference`` (two output dicts of the same
        frames); None for a kind without one."""
        if self.agreement_metric is None:
            return None
        return self.compare_to(reference)(candidate)

    def results_agreement(self, reference: Sequence[CameraResult],
                          candidate: Sequence[CameraResult]) -> TaskAgreement | None:
        """Task-level agreement of two runs' decoded results of the same camera frames, in the same
        order (`vitdeploy replay` reads them back from the JSONL); None for a kind that has none
        on decoded results."""
        return None

    def compares(self, output_names: Iterable[str]) -> bool:
        """Whether ``agreement`` can score a graph with these outputs: the kind has a task-level
        agreement and the graph gives every output the kind declares."""
        return self.agreement_metric is not None and {s.name for s in self.outputs()} <= set(output_names)

    def truth_scorer(self, *, class_map: np.ndarray, masks: bool = False) -> TruthScorer:
        """An accumulator scoring decoded outputs against labelled images; ``class_map``: dataset
        class index -> model class index; ``masks``: also score masks (data with masks)."""
        raise DataError(f"`vitdeploy eval` cannot score {self.kind} heads ({self.why_not('eval')})")

    def why_not(self, stage: str) -> str:
        """Why this kind does not support ``stage`` (run | agreement | eval), for error messages."""
        return "not supported for this head kind yet"
