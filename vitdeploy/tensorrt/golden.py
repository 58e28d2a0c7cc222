"""Golden inputs and the agreement a built engine must reach with them (DESIGN.md decision 4).

``golden.npz`` in the bundle holds, per graph, inputs for the bundle's full camera count and the
outputs ONNX Runtime computes for them from the FP32 ONNX. It is made once (on the CPU, before the
first build) and reused, so every engine of a bundle — each precision, each GPU — is judged on the
same frames; it is made again only when the FP32 ONNX changed. Image inputs are real photographs
through the bundle's own preprocessing, other inputs seeded random numbers.

An engine is run on the first ``n`` cameras of those inputs for the smallest and largest camera
count of its profile (each camera is computed independently, so the first ``n`` reference rows
stay the reference) and every output is compared with the FP32 reference:

* ``norm_error``: max |engine - reference| / max |reference| (an absolute error in units of the
  output's own scale, so logits and 0..1 boxes share one number);
* ``cosine``: cosine similarity of the flattened output;
* ``argmax``: for ``*logits`` outputs, the share of rows whose top class agrees (task level);
* ``mask_iou``: for ``*masks`` outputs (mask logits, > 0 is inside), the IoU of the masks.

Tolerances per precision, against the FP32 reference:

=========  ==========  ===========  ========  ========
precision  norm_error  cosine       argmax    mask_iou
=========  ==========  ===========  ========  ========
fp32       <= 1e-3     >= 0.99999   >= 0.99   >= 0.99
fp16       <= 2e-2     >= 0.999     >= 0.95   >= 0.95
int8       (not used)  >= 0.98      >= 0.85   >= 0.80
=========  ==========  ===========  ========  ========

FP32 engines are built without TF32, so they must match ONNX Runtime up to summation order. FP16
keeps LayerNorm/Softmax in FP32 and lands within a few per cent of the output scale. INT8 moves
single elements too far for an element-wise bound to mean anything, so it is judged on direction
(cosine) and on what the task reads from the tensor (top class, mask) — the calibration report has
the full task-level accuracy; this check catches an engine that broke what calibration measured.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vitdeploy.bundle import Bundle, atomic_path
from vitdeploy.bundle.manifest import CAMERA_AXIS, Graph, Precision
from vitdeploy.runtime.backends.onnxruntime import run_on_cpu
from vitdeploy.tensorrt.errors import BuildError

GOLDEN_FILE = "golden.npz"
_FORMAT = 1
_META = "__meta__"


@dataclass(frozen=True)
class Tolerance:
    max_norm_error: float | None  # None: not checked
    min_cosine: float
    min_argmax: float
    min_mask_iou: float


TOLERANCES: dict[Precision, Tolerance] = {
    Precision.FP32: Tolerance(max_norm_error=1e-3, min_cosine=0.99999, min_argmax=0.99, min_mask_iou=0.99),
    Precision.FP16: Tolerance(max_norm_error=2e-2, min_cosine=0.999, min_argmax=0.95, min_mask_iou=0.95),
    Precision.INT8: Tolerance(max_norm_error=None, min_cosine=0.98, min_argmax=0.85, min_mask_iou=0.80),
}


@dataclass
class OutputAgreement:
    """How one engine output agrees with its reference; ``failures`` says which bounds it broke."""

    max_abs: float
    norm_error: float
    cosine: float
    argmax: float | None = None
    mask_iou: float | None = None
    failures: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures


def compare_output(name: str, ref: np.ndarray, got: np.ndarray, tolerance: Tolerance) -> OutputAgreement:
    """``got`` (engine) against ``ref`` (FP32 ONNX Runtime) for output ``name``."""
    if got.shape != ref.shape:
        return OutputAgreement(math.inf, math.inf, 0.0, failures=(f"shape {got.shape}, expected {ref.shape}",))
    r = ref.astype(np.float64).ravel()
    g = got.astype(np.float64).ravel()
    if not np.isfinite(g).all():
        bad = int((~np.isfinite(g)).sum())
        return OutputAgreement(math.inf, math.inf, 0.0, failures=(f"{bad} NaN/Inf values",))
    diff = np.abs(g - r)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(r).max()) if r.size else 0.0
    norm_error = max_abs / scale if scale > 0 else max_abs
    nr, ng = float(np.linalg.norm(r)), float(np.linalg.norm(g))
    cosine = 1.0 if nr == 0 and ng == 0 else (float(r @ g) / (nr * ng) if nr > 0 and ng > 0 else 0.0)
    out = OutputAgreement(max_abs=max_abs, norm_error=norm_error, cosine=cosine)
    if name.endswith("logits") and ref.ndim >= 2 and ref.shape[-1] > 1:
        out.argmax = float((ref.argmax(-1) == got.argmax(-1)).mean())
    if name.endswith("masks"):
        inside_r, inside_g = ref > 0, got > 0
        union = int((inside_r | inside_g).sum())
        out.mask_iou = float((inside_r & inside_g).sum() / union) if union else 1.0
    failures = []
    t = tolerance
    if t.max_norm_error is not None and norm_error > t.max_norm_error:
        failures.append(f"norm error {norm_error:.2e} > {t.max_norm_error:g}")
    if cosine < t.min_cosine:
        failures.append(f"cosine {cosine:.6f} < {t.min_cosine:g}")
    if out.argmax is not None and out.argmax < t.min_argmax:
        failures.append(f"top-class agreement {out.argmax:.3f} < {t.min_argmax:g}")
    if out.mask_iou is not None and out.mask_iou < t.min_mask_iou:
        failures.append(f"mask IoU {out.mask_iou:.3f} < {t.min_mask_iou:g}")
    out.failures = tuple(failures)
    return out


@dataclass
class GoldenReport:
    """An engine against the golden outputs: case ("cameras=6") -> output -> agreement."""

    precision: Precision
    cases: dict[str, dict[str, OutputAgreement]]

    @property
    def tolerance(self) -> Tolerance:
        return TOLERANCES[self.precision]

    @property
    def passed(self) -> bool:
        return all(a.passed for per_output in self.cases.values() for a in per_output.values())

    def failures(self) -> list[str]:
        return [f"{case} {name}: {', '.join(a.failures)}" for case, per_output in self.cases.items()
                for name, a in per_output.items() if a.failures]

    def summary(self) -> str:
        """'pass (min cosine 0.99998, max norm error 3.1e-04)' or 'FAIL (cameras=6 logits: ...)'."""
        agreements = [a for per_output in self.cases.values() for a in per_output.values()]
        if not agreements:
            return "no cases"
        worst = (f"min cosine {min(a.cosine for a in agreements):.5f}, "
                 f"max norm error {max(a.norm_error for a in agreements):.1e}")
        if self.passed:
            return f"pass ({worst})"
        return f"FAIL ({'; '.join(self.failures())})"

    def to_record(self) -> dict:
        return {"reference": f"onnxruntime, fp32 ONNX, {GOLDEN_FILE}", "passed": self.passed,
                "tolerance": asdict(self.tolerance),
                "cases": {case: {name: {**asdict(a), "failures": list(a.failures)} for name, a in per_output.items()}
                          for case, per_output in self.cases.items()}}


# ---- the stored inputs and outputs --------------------------------------------------------------
@dataclass
class GoldenSet:
    """Inputs and FP32 reference outputs of one graph at ``dims`` (cameras first)."""

    graph: str
    onnx_sha256: str  # the FP32 ONNX the outputs came from
    dims: dict[str, int]
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]

    @property
    def cameras(self) -> int:
        return self.dims.get(CAMERA_AXIS, 0)

    def fits(self, graph: Graph, dims: dict[str, tuple[int, int]]) -> bool:
        """Whether the stored non-camera sizes lie in ``dims`` (name -> (min, max)) and the
        tensors are those of ``graph``."""
        if set(self.inputs) != {s.name for s in graph.inputs} or set(self.outputs) != {s.name for s in graph.outputs}:
            return False
        return all(lo <= self.dims.get(name, lo) <= hi for name, (lo, hi) in dims.items() if name != CAMERA_AXIS)

    def take(self, graph: Graph, cameras: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Inputs and reference outputs of the first ``cameras`` cameras."""
        if cameras == self.cameras:
            return dict(self.inputs), dict(self.outputs)
        if not 1 <= cameras <= self.cameras:
            raise BuildError(f"{GOLDEN_FILE} holds {self.cameras} cameras of graph {self.graph!r}, not {cameras}")
        specs = {s.name: s for s in [*graph.inputs, *graph.outputs]}
        for name in [*self.inputs, *self.outputs]:
            if not specs[name].shape or specs[name].shape[0] != CAMERA_AXIS:
                raise BuildError(f"tensor {name!r} of graph {self.graph!r} has no leading camera axis; "
                                 f"its golden case cannot be cut to {cameras} cameras")
        return ({k: np.ascontiguousarray(v[:cameras]) for k, v in self.inputs.items()},
                {k: np.ascontiguousarray(v[:cameras]) for k, v in self.outputs.items()})


def load_golden(path: str | Path) -> dict[str, GoldenSet]:
    """graph name -> golden set; an empty dict when there is no file."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data[_META]))
            arrays = {k: data[k] for k in data.files if k != _META}
    except (OSError, ValueError, KeyError) as exc:
        raise BuildError(f"cannot read {path} ({exc}); delete it and build again to make a new one") from exc
    if meta.get("format") != _FORMAT:
        return {}  # an older layout: made again on the next build
    try:
        return {graph: GoldenSet(graph=graph, onnx_sha256=info["onnx_sha256"], dims=dict(info["dims"]),
                                 inputs={name: arrays[f"{graph}/in/{name}"] for name in info["inputs"]},
                                 outputs={name: arrays[f"{graph}/out/{name}"] for name in info["outputs"]})
                for graph, info in meta["graphs"].items()}
    except (KeyError, TypeError) as exc:
        raise BuildError(f"{path} is incomplete (no {exc}); delete it and build again to make a new one") from exc


def save_golden(path: str | Path, sets: dict[str, GoldenSet]) -> None:
    meta = {"format": _FORMAT, "graphs": {
        g.graph: {"onnx_sha256": g.onnx_sha256, "dims": g.dims, "inputs": list(g.inputs), "outputs": list(g.outputs)}
        for g in sets.values()}}
    arrays: dict[str, np.ndarray] = {_META: np.array(json.dumps(meta))}
    for g in sets.values():
        arrays.update({f"{g.graph}/in/{k}": v for k, v in g.inputs.items()})
        arrays.update({f"{g.graph}/out/{k}": v for k, v in g.outputs.items()})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.savez adds no suffix
        np.savez_compressed(fh, **arrays)


def golden_inputs(bundle: Bundle, graph: Graph, dims: dict[str, int], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of ``graph`` at ``dims``: photographs for the image input, seeded noise otherwise."""
    rng = np.random.default_rng(seed)
    pre = bundle.manifest.preprocessing
    feeds = {}
    for spec in graph.inputs:
        shape = spec.concrete_shape(**dims)
        is_image = (spec.dtype == "float32" and len(shape) == 4 and shape[1] == 3
                    and tuple(shape[2:]) == tuple(pre.image_size) and not pre.fused)
        if is_image:
            feeds[spec.name] = _photo_batch(shape[0], pre)
        elif np.issubdtype(np.dtype(spec.dtype), np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        else:
            feeds[spec.name] = np.zeros(shape, spec.dtype)
    return feeds


def _photo_batch(cameras: int, preprocessing) -> np.ndarray:
    """``cameras`` different views of one photograph, preprocessed as the bundle says."""
    import cv2
    import matplotlib.cbook

    from vitdeploy.runtime.preprocess import preprocess_frames

    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    photo = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    frames = []
    for i in range(cameras):
        view = np.roll(photo, shift=i * photo.shape[1] // max(cameras, 1), axis=1)
        if i % 2:
            view = view[:, ::-1]
        frames.append(np.ascontiguousarray(view))
    batch, _ = preprocess_frames(frames, preprocessing)
    return batch


def ensure_golden(bundle: Bundle, graph: Graph, *, dims: dict[str, tuple[int, int, int]],
                  say: Callable[[str], None] = lambda _msg: None) -> GoldenSet:
    """The stored golden set of ``graph``, made (and saved) first if missing, stale or not fitting
    ``dims`` (name -> (min, opt, max) of the profile being built)."""
    path = bundle.file(GOLDEN_FILE)
    sets = load_golden(path)
    fp32 = graph.variant(Precision.FP32)
    if fp32 is None:
        raise BuildError(f"graph {graph.name!r} has no fp32 ONNX to make golden outputs from; re-export the bundle")
    ranges = {name: (lo, hi) for name, (lo, _opt, hi) in dims.items()}
    current = sets.get(graph.name)
    if current is not None and current.onnx_sha256 == fp32.sha256 and current.fits(graph, ranges):
        return current
    want = {CAMERA_AXIS: bundle.manifest.max_cameras}
    want.update({name: opt for name, (_lo, opt, _hi) in dims.items() if name != CAMERA_AXIS})
    say(f"making golden outputs of {graph.name} with onnxruntime (fp32, {want})")
    inputs = golden_inputs(bundle, graph, want)
    outputs = run_on_cpu(bundle.onnx_path(Precision.FP32, graph.name), inputs)
    made = GoldenSet(graph=graph.name, onnx_sha256=fp32.sha256, dims=want, inputs=inputs,
                     outputs={s.name: outputs[s.name] for s in graph.outputs})
    sets[graph.name] = made
    save_golden(path, sets)
    return made


def check_engine(run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], golden: GoldenSet, graph: Graph, *,
                 precision: Precision, camera_counts: list[int]) -> GoldenReport:
    """Run ``run`` (an engine) on the golden inputs cut to each camera count and compare."""
    tolerance = TOLERANCES[precision]
    cases = {}
    for n in sorted(set(camera_counts)):
        inputs, ref = golden.take(graph, n)
        got = run(inputs)
        cases[f"{CAMERA_AXIS}={n}"] = {name: compare_output(name, r, np.asarray(got[name]), tolerance)
                                       for name, r in ref.items()}
    return GoldenReport(precision=precision, cases=cases)
