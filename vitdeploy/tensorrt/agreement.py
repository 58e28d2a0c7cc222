"""The agreement a built engine must reach with the golden outputs (DESIGN.md decision 4).

An engine is run on the golden pool (``golden.py``) in batches of the smallest and largest camera
count of its profile (each camera is computed independently, so every frame keeps its reference)
and every output is compared with the FP32 reference, element by element and as a whole:

* ``norm_error``: max |engine - reference| / max |reference|: the worst single element, in units
  of the output's own scale (so logits and 0..1 boxes share one number);
* ``within``: the share of elements with |engine - reference| <= atol * max |reference| +
  rtol * |reference| (numpy's ``allclose`` bound, with ``atol`` relative to the output's scale);
* ``cosine``: cosine similarity of the flattened output;
* ``argmax``: for ``*logits`` outputs, the share of rows whose top class agrees;
* ``mask_iou``: for ``*masks`` outputs (mask logits, > 0 is inside), the IoU of the masks;
* the head's own task-level agreement (``task_check_for``), where the head has one.

Tolerances per precision, against the FP32 reference:

=========  ==========  =================================  ========  ========  ========
precision  norm_error  within (atol, rtol)                cosine    argmax    mask_iou
=========  ==========  =================================  ========  ========  ========
fp32       <= 1e-3     1.0 (1e-3, 1e-3)                   >= .99999 >= 0.99   >= 0.99
fp16       <= 2e-2     >= 0.95 (1e-2, 1e-2)               >= 0.999  >= 0.95   >= 0.95
int8       <= 0.30     >= 0.95 (0.05, 0.05)               >= 0.98   >= 0.85   >= 0.80
=========  ==========  =================================  ========  ========  ========

FP32 engines are built without TF32, so they must match ONNX Runtime up to summation order. FP16
keeps LayerNorm/Softmax in FP32 and lands within a few per cent of the output scale. Cosine alone
cannot judge INT8: it hardly moves on non-negative outputs (boxes scaled by 1.2 keep a cosine of
0.9993, noise of sigma 0.1 on 0..1 boxes 0.97-0.99), so INT8 must also keep 95 % of the elements
within 5 % of the output scale plus 5 % of their own value, and no element beyond 30 % of the
scale. Measured with ONNX Runtime on the golden photographs: a faithful INT8 graph of the trained
test detector keeps every element within that bound; boxes x1.2 keep 50-80 %, sigma-0.1 noise 50-60 %.

Task level. The head's agreement with FP32 (``Head.agreement``: box mAP@[.50:.95] against FP32's
confident detections for ``detr``, mask IoU for ``mask``, top-1 for ``cls``/``cait``/``tab``) on
the whole pool must reach a minimum per precision:

=========  ==============================================  =====  ===========================
precision  minimum (``TASK_BOUNDS``)                       floor  nothing recorded (default)
=========  ==============================================  =====  ===========================
fp32       0.99 (``FP32_MIN_AGREEMENT``)                   -      -
fp16       the agreement calibration measured for the      0.80   0.95
           variant on its held-out frames - 0.05
int8       the agreement calibration measured - 0.15       0.50   0.75
=========  ==============================================  =====  ===========================

Why these. An FP32 engine differs from ONNX Runtime by summation order only. Calibration measured
each variant on its own held-out frames; the golden pool is 12 other frames, two of them a
photograph no driving detector was trained on, so the same graph scores lower on it. Measured with
ONNX Runtime on demo-detr's pool: FP16 1.000 (calibration: 0.998-1.000); INT8 0.871 where
calibration measured 0.941 on 64 held-out frames and 0.896 where it measured 0.967 on 16 (the
driving frames alone 0.931, the photograph alone 0.66), and a TensorRT engine's kernels are not
ONNX Runtime's; hence 0.15 below for INT8. Box mAP@[.50:.95] punishes box error hard, so a broken
engine lands far below: boxes x1.2 score 0.01-0.02, x1.05 0.09, sigma-0.1 box noise 0.00-0.02,
sigma 0.005 (1 pixel in 200) 0.51-0.56, two classes swapped 0.67 (FP32's minimum catches a wrong
class order). The floor keeps a variant that calibration measured poorly (accepted without
``--min-agreement``) from lowering the bar for its engine to nothing. A variant without a recorded
agreement (imported, or made before agreements were recorded) gets the default.

Outputs whose rows are a set (``Head.unordered_outputs``: DETR-style queries chosen by a top-k)
can be reordered by a lower precision without any harm to the detections: demo-detr's FP16 and
INT8 ONNX pick a different top-30 query set on some frames (FP16: worst logit off by 77 % of the
logits' scale, at a box mAP of 1.000; INT8: logits cosine 0.96, 83 % of elements in bound). Their element-wise bounds are advisory (kept in the record as
``advisory``) when the head's task-level agreement is defined and passes; other outputs keep
their element bounds. An undefined agreement (the head cannot score the pool, e.g. FP32 detects
nothing confidently in it) decides nothing: it is reported in the record and the summary, and
every output keeps its element bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from vitdeploy.bundle.manifest import CAMERA_AXIS, Graph, Manifest, Precision
from vitdeploy.heads import Head, head_for
from vitdeploy.tensorrt.golden import GOLDEN_FILE, GoldenSet


@dataclass(frozen=True)
class Tolerance:
    max_norm_error: float
    atol: float  # element bound: |engine - reference| <= atol * max|reference| + rtol * |reference|
    rtol: float
    min_within: float  # share of elements inside the element bound
    min_cosine: float
    min_argmax: float
    min_mask_iou: float


TOLERANCES: dict[Precision, Tolerance] = {
    Precision.FP32: Tolerance(max_norm_error=1e-3, atol=1e-3, rtol=1e-3, min_within=1.0, min_cosine=0.99999,
                              min_argmax=0.99, min_mask_iou=0.99),
    Precision.FP16: Tolerance(max_norm_error=2e-2, atol=1e-2, rtol=1e-2, min_within=0.95, min_cosine=0.999,
                              min_argmax=0.95, min_mask_iou=0.95),
    Precision.INT8: Tolerance(max_norm_error=0.30, atol=0.05, rtol=0.05, min_within=0.95, min_cosine=0.98,
                              min_argmax=0.85, min_mask_iou=0.80),
}


#: FP32 engines: the same graph as the reference, up to summation order.
FP32_MIN_AGREEMENT = 0.99


@dataclass(frozen=True)
class TaskBound:
    """The task-level minimum of a lower precision: ``margin`` below the agreement calibration
    measured for the variant, never below ``floor``; ``default`` where none was measured."""

    margin: float
    floor: float
    default: float


TASK_BOUNDS: dict[Precision, TaskBound] = {
    Precision.FP16: TaskBound(margin=0.05, floor=0.80, default=0.95),
    Precision.INT8: TaskBound(margin=0.15, floor=0.50, default=0.75),
}


@dataclass
class TaskVerdict:
    """The head's agreement on the golden pool against its minimum. ``value`` None: undefined
    (``reason`` says why); that decides nothing, and is reported."""

    metric: str
    value: float | None
    minimum: float
    basis: str  # where ``minimum`` comes from
    reason: str = ""
    details: dict = field(default_factory=dict)

    @property
    def defined(self) -> bool:
        return self.value is not None

    @property
    def passed(self) -> bool:
        return self.value is not None and self.value >= self.minimum

    def failures(self) -> list[str]:
        if self.value is None or self.passed:
            return []
        return [f"{self.metric} {self.value:.3f} < {self.minimum:.2f} ({self.basis})"]

    def describe(self) -> str:
        """'detection_map 0.931 (min 0.84)' or 'detection_map undefined: FP32 detects nothing ...'."""
        if self.value is None:
            return f"{self.metric} undefined: {self.reason}"
        return f"{self.metric} {self.value:.3f} (min {self.minimum:.2f})"

    def to_record(self) -> dict:
        return {**asdict(self), "passed": self.passed, "failures": self.failures()}


@dataclass(frozen=True)
class TaskCheck:
    """The bundle head's task-level agreement as a golden check: ``measured`` is the agreement
    calibration recorded per precision for the graph's variants (``TASK_BOUNDS`` turns it into a
    minimum); ``unordered``: the outputs the head judges as sets."""

    head: Head
    measured: dict[Precision, float] = field(default_factory=dict)

    @property
    def unordered(self) -> frozenset[str]:
        return frozenset(self.head.unordered_outputs)

    def minimum(self, precision: Precision) -> tuple[float, str]:
        """The minimum agreement at ``precision`` and where it comes from."""
        if precision is Precision.FP32:
            return FP32_MIN_AGREEMENT, "fp32: the reference's own graph"
        bound = TASK_BOUNDS[precision]
        measured = self.measured.get(precision)
        if measured is None:
            return bound.default, f"{precision.value} default: no agreement recorded by calibration"
        if measured - bound.margin <= bound.floor:
            return bound.floor, f"{precision.value} floor (calibration measured {measured:.3f})"
        return measured - bound.margin, f"calibration measured {measured:.3f}, minus {bound.margin:g}"

    def __call__(self, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
                 precision: Precision) -> TaskVerdict:
        """``candidate`` (an engine's outputs for the golden pool) against ``reference`` (FP32)."""
        minimum, basis = self.minimum(precision)
        found = self.head.agreement(reference, candidate)
        return TaskVerdict(metric=found.metric, value=found.value, minimum=minimum, basis=basis,
                           reason=found.reason, details=dict(found.details))


def task_check_for(manifest: Manifest, graph: Graph) -> TaskCheck | None:
    """The task-level check of ``graph``'s engines: ``manifest``'s head's own agreement (as
    calibration measures it), or None when the head has none for this graph (``Head.compares``)."""
    head = head_for(manifest)
    if not head.compares(s.name for s in graph.outputs):
        return None
    measured = {}
    for variant in graph.variants:
        recorded = variant.details.get("agreement") or {}
        if recorded.get("metric") == head.agreement_metric and recorded.get("value") is not None:
            measured[variant.precision] = float(recorded["value"])
    return TaskCheck(head=head, measured=measured)


@dataclass
class OutputAgreement:
    """How one engine output agrees with its reference; ``failures`` says which bounds it broke,
    ``advisory`` which bounds it missed that do not count (a set output the task check passed)."""

    max_abs: float
    norm_error: float
    cosine: float
    within: float = 1.0
    argmax: float | None = None
    mask_iou: float | None = None
    failures: tuple[str, ...] = ()
    advisory: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures

    def judged_as_set(self) -> OutputAgreement:
        """This agreement with its failures made advisory."""
        return replace(self, failures=(), advisory=self.failures)


def _cosine(r: np.ndarray, g: np.ndarray) -> float:
    nr, ng = float(np.linalg.norm(r)), float(np.linalg.norm(g))
    if nr == 0 and ng == 0:
        return 1.0
    return float(r @ g) / (nr * ng) if nr > 0 and ng > 0 else 0.0


def compare_output(name: str, ref: np.ndarray, got: np.ndarray, tolerance: Tolerance) -> OutputAgreement:
    """``got`` (engine) against ``ref`` (FP32 ONNX Runtime) for output ``name``."""
    if got.shape != ref.shape:
        return OutputAgreement(math.inf, math.inf, 0.0, 0.0, failures=(f"shape {got.shape}, expected {ref.shape}",))
    r = ref.astype(np.float64).ravel()
    g = got.astype(np.float64).ravel()
    if not np.isfinite(g).all():
        bad = int((~np.isfinite(g)).sum())
        return OutputAgreement(math.inf, math.inf, 0.0, 0.0, failures=(f"{bad} NaN/Inf values",))
    diff = np.abs(g - r)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(r).max()) if r.size else 0.0
    t = tolerance
    out = OutputAgreement(max_abs=max_abs, norm_error=max_abs / scale if scale > 0 else max_abs,
                          cosine=_cosine(r, g),
                          within=float((diff <= t.atol * scale + t.rtol * np.abs(r)).mean()) if diff.size else 1.0)
    if name.endswith("logits") and ref.ndim >= 2 and ref.shape[-1] > 1:
        out.argmax = float((ref.argmax(-1) == got.argmax(-1)).mean())
    if name.endswith("masks"):
        inside_r, inside_g = ref > 0, got > 0
        union = int((inside_r | inside_g).sum())
        out.mask_iou = float((inside_r & inside_g).sum() / union) if union else 1.0
    failures = []
    if out.norm_error > t.max_norm_error:
        failures.append(f"norm error {out.norm_error:.2e} > {t.max_norm_error:g}")
    if out.within < t.min_within:
        failures.append(f"{out.within:.1%} of elements within {t.atol:g} x scale + {t.rtol:g} x |value| "
                        f"< {t.min_within:.1%}")
    if out.cosine < t.min_cosine:
        failures.append(f"cosine {out.cosine:.6f} < {t.min_cosine:g}")
    if out.argmax is not None and out.argmax < t.min_argmax:
        failures.append(f"top-class agreement {out.argmax:.3f} < {t.min_argmax:g}")
    if out.mask_iou is not None and out.mask_iou < t.min_mask_iou:
        failures.append(f"mask IoU {out.mask_iou:.3f} < {t.min_mask_iou:g}")
    out.failures = tuple(failures)
    return out


@dataclass
class GoldenReport:
    """An engine against the golden outputs: case ("cameras=6") -> output -> agreement, and the
    head's task-level verdict per case (``task``; empty where the head has no check)."""

    precision: Precision
    cases: dict[str, dict[str, OutputAgreement]]
    task: dict[str, TaskVerdict] = field(default_factory=dict)
    frames: int = 0  # frames of the golden pool each case ran on

    @property
    def tolerance(self) -> Tolerance:
        return TOLERANCES[self.precision]

    @property
    def passed(self) -> bool:
        return (all(a.passed for per_output in self.cases.values() for a in per_output.values())
                and all(v.passed or not v.defined for v in self.task.values()))

    def failures(self) -> list[str]:
        found = [f"{case} {name}: {', '.join(a.failures)}" for case, per_output in self.cases.items()
                 for name, a in per_output.items() if a.failures]
        return found + [f"{case} task: {'; '.join(v.failures())}" for case, v in self.task.items() if v.failures()]

    def summary(self) -> str:
        """'pass (detection_map 0.931 (min 0.84); min cosine 0.99998, ...)' or 'FAIL (cameras=6
        logits: ...)'; an undefined task agreement, and outputs judged as sets, are named."""
        agreements = [a for per_output in self.cases.values() for a in per_output.values()]
        if not agreements:
            return "no cases"
        notes = _task_notes(self.task)
        binding = [a for a in agreements if not a.advisory]
        if binding:
            notes.append(f"min cosine {min(a.cosine for a in binding):.5f}, "
                         f"max norm error {max(a.norm_error for a in binding):.1e}, "
                         f"min within {min(a.within for a in binding):.1%}")
        as_sets = sorted({name for per_output in self.cases.values() for name, a in per_output.items() if a.advisory})
        if as_sets:
            notes.append(f"element bounds of {', '.join(as_sets)} advisory (sets, judged by the task check)")
        if self.passed:
            return f"pass ({'; '.join(notes)})"
        return f"FAIL ({'; '.join(self.failures() + [n for n in notes if 'undefined' in n])})"

    def to_record(self) -> dict:
        return {"reference": f"onnxruntime, fp32 ONNX, {GOLDEN_FILE} ({self.frames} frames)", "passed": self.passed,
                "tolerance": asdict(self.tolerance),
                "cases": {case: {name: {**asdict(a), "failures": list(a.failures), "advisory": list(a.advisory)}
                                 for name, a in per_output.items()}
                          for case, per_output in self.cases.items()},
                "task": {case: v.to_record() for case, v in self.task.items()}}


def _task_notes(task: dict[str, TaskVerdict]) -> list[str]:
    """The task verdicts in a few words: the lowest defined value, and any undefined one."""
    defined = [v for v in task.values() if v.defined]
    notes = [min(defined, key=lambda v: v.value).describe()] if defined else []
    undefined = next((v for v in task.values() if not v.defined), None)
    return notes + ([undefined.describe()] if undefined is not None else [])


def check_engine(run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], golden: GoldenSet, graph: Graph, *,
                 precision: Precision, camera_counts: list[int], task_check: TaskCheck | None = None) -> GoldenReport:
    """Run ``run`` (an engine) on the golden pool in batches of each camera count and compare with
    the reference; with ``task_check``, the head's agreement decides the outputs it judges as sets."""
    tolerance = TOLERANCES[precision]
    report = GoldenReport(precision=precision, cases={}, frames=golden.frames)
    for n in sorted(set(camera_counts)):
        got = golden.outputs_of(run, graph, cameras=n)
        case = f"{CAMERA_AXIS}={n}"
        per_output = {name: compare_output(name, r, got[name], tolerance) for name, r in golden.outputs.items()}
        if task_check is not None:
            verdict = report.task[case] = task_check(golden.outputs, got, precision)
            if verdict.passed:
                per_output.update({name: per_output[name].judged_as_set()
                                   for name in task_check.unordered & per_output.keys()})
        report.cases[case] = per_output
    return report
