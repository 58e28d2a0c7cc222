"""The accuracy report: a low-precision graph against its FP32 original on held-out frames.

Two levels (DESIGN.md decision 4). Per output tensor: max / mean absolute error and cosine
similarity. Per task, what a perception engineer would look at, with the FP32 predictions as the
ground truth: the bundle's head decides what that is (``Head.compare_to``; detection mAP, mask IoU
or top-1 agreement, see ``vitdeploy.heads.agreement``).

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
from vitdeploy.heads import Head, TaskAgreement
from vitdeploy.runtime.backends.onnxruntime import cpu_session

_BATCH = 8


@dataclass
class TensorAgreement:
    """One output over all held-out frames. ``cosine`` is over the whole tensor flattened;
    ``min_frame_cosine`` the worst single frame."""

    max_abs: float
    mean_abs: float
    cosine: float
    min_frame_cosine: float


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
def run_graph(model: str | Path | onnx.ModelProto, feeds: dict[str, np.ndarray], *, batch: int | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Run ``feeds`` ((N, ...) per input) through onnxruntime on the CPU, ``batch`` cameras at a
    time (default 8; a rig graph: the cameras of one frame set); returns each output concatenated
    over the runs."""
    batch = batch or _BATCH
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
    """FP32 outputs of held-out frames (``reference``, name -> (N, ...)) and the bundle's head,
    which scores candidate outputs of the same frames against them (``score``: None for a head
    without a task-level agreement). The head's comparison is built once, so sensitivity analysis
    can score many candidates cheaply."""

    def __init__(self, *, head: Head, reference: dict[str, np.ndarray]):
        self.head = head
        self.reference = reference
        self._score = head.compare_to(reference) if head.agreement_metric is not None else None

    def score(self, candidate: dict[str, np.ndarray]) -> TaskAgreement | None:
        return self._score(candidate) if self._score is not None else None


def build_report(*, precision: str, graph: str, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
                 scorer: TaskScorer, heldout_sha256: str, min_agreement: float | None) -> AccuracyReport:
    missing = sorted(set(reference) - set(candidate))
    if missing:
        raise CalibrationError(f"the {precision} graph lacks outputs {missing} of the FP32 graph")
    outputs = {name: tensor_agreement(reference[name], candidate[name]) for name in reference}
    frames = int(next(iter(reference.values())).shape[0])
    return AccuracyReport(precision=precision, graph=graph, frames=frames, heldout_sha256=heldout_sha256,
                          outputs=outputs, task=scorer.score(candidate), min_agreement=min_agreement)
