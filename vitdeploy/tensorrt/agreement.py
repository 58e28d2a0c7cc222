"""The agreement a built engine must reach with the golden outputs (DESIGN.md decision 4).

An engine is run on the first ``n`` cameras of the golden inputs (``golden.py``) for the smallest
and largest camera count of its profile (each camera is computed independently, so the first ``n``
reference rows stay the reference) and every output is compared with the FP32 reference,
element by element and as a whole:

* ``norm_error``: max |engine - reference| / max |reference|: the worst single element, in units
  of the output's own scale (so logits and 0..1 boxes share one number);
* ``within``: the share of elements with |engine - reference| <= atol * max |reference| +
  rtol * |reference| (numpy's ``allclose`` bound, with ``atol`` relative to the output's scale);
* ``cosine``: cosine similarity of the flattened output;
* ``argmax``: for ``*logits`` outputs, the share of rows whose top class agrees;
* ``mask_iou``: for ``*masks`` outputs (mask logits, > 0 is inside), the IoU of the masks;
* the head's own task-level agreement, where the head provides one (``task_check_for``).

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

Outputs whose rows are a set (DETR-style queries chosen by a top-k) can be reordered by INT8
without any harm to the detections; only the head knows that, so the task-level check is the
head's (``task_check_for``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from vitdeploy.bundle.manifest import CAMERA_AXIS, Graph, Manifest, Precision
from vitdeploy.tensorrt.golden import GOLDEN_FILE, GoldenSet

#: A task-level comparison of an engine's outputs with the FP32 reference for one precision:
#: returns the ways they disagree (an empty list: they agree).
TaskCheck = Callable[[dict[str, np.ndarray], dict[str, np.ndarray], Precision], list[str]]


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


def task_check_for(manifest: Manifest) -> TaskCheck | None:
    """HOOK for issue 19's head type: the head's own agreement (box IoU and score agreement after
    matching for detectors, mask IoU, top-1), as calibration measures it, for the golden check.

    Returns None until ``vitdeploy.heads`` provides it: calibration's scorer lives in
    ``calibration/``, which the TensorRT room may not import (DESIGN.md's import order). When the
    Head type lands, this asks ``manifest``'s head for its agreement function and thresholds.
    """
    return None


@dataclass
class OutputAgreement:
    """How one engine output agrees with its reference; ``failures`` says which bounds it broke."""

    max_abs: float
    norm_error: float
    cosine: float
    within: float = 1.0
    argmax: float | None = None
    mask_iou: float | None = None
    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures


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
    head's task-level disagreements per case (``task``; empty where the head has no check)."""

    precision: Precision
    cases: dict[str, dict[str, OutputAgreement]]
    task: dict[str, list[str]] = field(default_factory=dict)

    @property
    def tolerance(self) -> Tolerance:
        return TOLERANCES[self.precision]

    @property
    def passed(self) -> bool:
        return (all(a.passed for per_output in self.cases.values() for a in per_output.values())
                and not any(self.task.values()))

    def failures(self) -> list[str]:
        found = [f"{case} {name}: {', '.join(a.failures)}" for case, per_output in self.cases.items()
                 for name, a in per_output.items() if a.failures]
        return found + [f"{case} task: {'; '.join(why)}" for case, why in self.task.items() if why]

    def summary(self) -> str:
        """'pass (min cosine 0.99998, max norm error 3.1e-04)' or 'FAIL (cameras=6 logits: ...)'."""
        agreements = [a for per_output in self.cases.values() for a in per_output.values()]
        if not agreements:
            return "no cases"
        worst = (f"min cosine {min(a.cosine for a in agreements):.5f}, "
                 f"max norm error {max(a.norm_error for a in agreements):.1e}, "
                 f"min within {min(a.within for a in agreements):.1%}")
        if self.passed:
            return f"pass ({worst})"
        return f"FAIL ({'; '.join(self.failures())})"

    def to_record(self) -> dict:
        return {"reference": f"onnxruntime, fp32 ONNX, {GOLDEN_FILE}", "passed": self.passed,
                "tolerance": asdict(self.tolerance),
                "cases": {case: {name: {**asdict(a), "failures": list(a.failures)} for name, a in per_output.items()}
                          for case, per_output in self.cases.items()},
                "task": {case: list(why) for case, why in self.task.items()}}


def check_engine(run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], golden: GoldenSet, graph: Graph, *,
                 precision: Precision, camera_counts: list[int], task_check: TaskCheck | None = None) -> GoldenReport:
    """Run ``run`` (an engine) on the golden inputs cut to each camera count and compare."""
    tolerance = TOLERANCES[precision]
    report = GoldenReport(precision=precision, cases={})
    for n in sorted(set(camera_counts)):
        inputs, ref = golden.take(graph, n)
        got = {name: np.asarray(value) for name, value in run(inputs).items()}
        case = f"{CAMERA_AXIS}={n}"
        report.cases[case] = {name: compare_output(name, r, got[name], tolerance) for name, r in ref.items()}
        if task_check is not None:
            report.task[case] = list(task_check(ref, got, precision))
    return report
