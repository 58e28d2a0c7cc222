"""`vitdeploy calibrate`: a bundle's FP32 ONNX -> model.fp16.onnx or model.int8.onnx, with proof.

Order matters for safety: options and ``--exclude`` patterns are checked and the data is read
before anything is written, so bad input leaves the bundle as it was. ModelOpt works in a
temporary folder; the new ONNX, its report and the manifest are renamed into place only after the
accuracy report has been measured on the file's exact bytes. A result below ``min_agreement`` is
still written (for inspection) but recorded as ``rejected``.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx

from vitdeploy.bundle import (
    Bundle,
    Graph,
    Precision,
    Status,
    Variant,
    atomic_path,
    atomic_write_text,
    sha256_file,
)
from vitdeploy.bundle.manifest import CAMERA_AXIS, Manifest
from vitdeploy.calibration.data import (
    DEFAULT_HELDOUT,
    DEFAULT_SAMPLES,
    SYNTHETIC,
    CalibrationData,
    ProgressFn,
    load_calibration_data,
)
from vitdeploy.calibration.fp16 import Fp16Conversion, convert_fp16
from vitdeploy.calibration.int8 import Int8Recipe, Placement, plan_int8, quantize_int8
from vitdeploy.calibration.layers import Layer, find_layers
from vitdeploy.calibration.modelopt_runner import CalibrationError
from vitdeploy.calibration.report import AccuracyReport, TaskScorer, build_report, run_graph
from vitdeploy.calibration.sensitivity import (
    Fallback,
    GroupSensitivity,
    auto_fallback,
    rank_groups,
    sensitivity_feeds,
)
from vitdeploy.errors import BundleError
from vitdeploy.heads import Head, head_for


@dataclass
class CalibrationResult:
    bundle: Bundle
    precision: Precision
    onnx_path: Path
    report_path: Path
    log_path: Path
    variant: Variant
    report: AccuracyReport
    data: CalibrationData
    placement: Placement | None = None  # INT8
    fp16: Fp16Conversion | None = None  # FP16
    sensitivity: list[GroupSensitivity] = field(default_factory=list)
    fallback: Fallback | None = None
    seconds: float = 0.0

    @property
    def status(self) -> Status:
        return self.variant.status

    @property
    def suggested_exclude(self) -> list[str]:
        """Groups that cost task agreement when quantized alone, worst first."""
        return [g.group for g in self.sensitivity if g.cost > 0][:8]

    @property
    def warnings(self) -> list[str]:
        return self.data.warnings


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _modelopt_version() -> str:
    try:
        return importlib.metadata.version("nvidia-modelopt")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _keep_log(log: Path, folder: Path) -> Path:
    """Copy ModelOpt's log from the work folder into the bundle, so it outlives the work folder."""
    target = folder / log.name
    if log.is_file():
        with atomic_path(target) as staged:
            shutil.copyfile(log, staged)
    return target


def _graph(bundle: Bundle, head: Head) -> Graph:
    m = bundle.manifest
    if head.prompted or len(m.graphs) != 1:
        raise CalibrationError(
            f"calibrate handles single-graph bundles; {m.model} has graphs {[g.name for g in m.graphs]} "
            f"({head.why_not('agreement')})")
    return m.graphs[0]


@dataclass(frozen=True)
class CalibrationOptions:
    """How ``calibrate_bundle`` calibrates; the defaults are `vitdeploy calibrate`'s.

    ``samples``/``heldout``: calibration and held-out frames drawn (seeded by ``seed``) from the
    data; ``recipe``: the INT8 recipe (default ``Int8Recipe()``; INT8 only); ``min_agreement``:
    the task agreement with FP32 (0..1) below which the result is recorded ``rejected``;
    ``sensitivity``: rank the quantized layer groups by what each costs (INT8); ``auto_fallback``:
    keep the costliest groups in high precision until ``min_agreement`` is met (INT8).
    """

    samples: int = DEFAULT_SAMPLES
    heldout: int = DEFAULT_HELDOUT
    seed: int = 0
    recipe: Int8Recipe | None = None
    min_agreement: float | None = None
    sensitivity: bool = False
    auto_fallback: bool = False

    def check(self, precision: Precision, head: Head) -> None:
        """Raise a ``CalibrationError`` for options that do not go together, before any work."""
        min_agreement = self.min_agreement
        if precision is Precision.FP32:
            raise CalibrationError("--precision fp32 is what export already wrote; choose fp16 or int8")
        if min_agreement is not None and not 0.0 <= min_agreement <= 1.0:
            raise CalibrationError(f"--min-agreement {min_agreement} is outside 0..1 (e.g. 0.9: 90% agreement "
                                   "with FP32)")
        if min_agreement is not None and head.agreement_metric is None:
            raise CalibrationError(f"no task-level agreement is defined for {head.kind!r} heads, so --min-agreement "
                                   "cannot be checked; drop it (the report still gives per-output errors)")
        if (self.sensitivity or self.auto_fallback) and precision is not Precision.INT8:
            raise CalibrationError("--sensitivity and --auto-fallback rank quantized layers; they apply to "
                                   "--precision int8")
        if self.auto_fallback and min_agreement is None:
            raise CalibrationError("--auto-fallback needs --min-agreement: the agreement to fall back until")
        if (self.sensitivity or self.auto_fallback) and head.geometry_inputs:
            raise CalibrationError(f"--sensitivity and --auto-fallback are not built for rig-level ({head.kind}) graphs "
                                   "yet; keep layers in high precision with --exclude")


@dataclass
class _Conversion:
    """What making the low-precision file produced (INT8: placement and sensitivity; FP16: kept ops)."""

    recipe: Int8Recipe
    placement: Placement | None = None
    fp16: Fp16Conversion | None = None
    ranking: list[GroupSensitivity] = field(default_factory=list)
    fallback: Fallback | None = None

    def report_extra(self) -> dict:
        """What the accuracy report adds: the sensitivity ranking and the auto-fallback outcome."""
        extra: dict = {}
        if self.ranking:
            extra["sensitivity"] = [g.summary() for g in self.ranking]
        if self.fallback is not None:
            extra["auto_fallback"] = {"excluded": self.fallback.excluded, "agreement": self.fallback.agreement,
                                      "reached": self.fallback.reached}
        return extra

    def summary(self) -> dict:
        out: dict = {}
        if self.placement is not None:
            out["recipe"] = self.recipe.summary()
            out["placement"] = self.placement.summary()
        if self.fp16 is not None:
            out["fp16"] = self.fp16.summary()
        return out


def calibrate_bundle(bundle_path: str | Path, *, precision: Precision | str, data: str | Path = SYNTHETIC,
                     options: CalibrationOptions = CalibrationOptions(),
                     progress: ProgressFn | None = None) -> CalibrationResult:
    """Write the ``precision`` ONNX of the bundle's graph, measure it against FP32 on held-out
    frames, and record it as a Variant (``good``, or ``rejected`` below ``options.min_agreement``).

    ``data``: an image folder, rig recording folder, video, .npz or ``"synthetic"`` (see
    ``vitdeploy.calibration.data``).
    """
    start = time.perf_counter()
    say = progress or (lambda _stage, _done, _total: None)
    precision = Precision.parse(precision)
    bundle = Bundle.open(bundle_path)
    manifest = bundle.manifest
    head = head_for(manifest)
    graph = _graph(bundle, head)
    fp32_path = bundle.onnx_path(Precision.FP32, graph.name)
    options.check(precision, head)
    set_cameras = rig_cameras(head, manifest)
    layers = find_layers(_load(fp32_path), dims={CAMERA_AXIS: set_cameras} if set_cameras else None)
    recipe = options.recipe or Int8Recipe()
    # checks --exclude early
    plan = plan_int8(layers, recipe, keep=head.high_precision_layers) if precision is Precision.INT8 else None

    calib = load_calibration_data(data, inputs=graph.inputs, preprocessing=manifest.preprocessing,
                                  samples=options.samples, heldout=options.heldout, seed=options.seed,
                                  progress=progress, set_cameras=set_cameras)
    say("running FP32 on held-out frames", 0, 0)
    scorer = TaskScorer(head=head, reference=run_graph(fp32_path, calib.heldout, batch=calib.set_cameras))

    name = f"{Path(graph.variant(Precision.FP32).file).stem}.{precision.value}.onnx"
    with tempfile.TemporaryDirectory(prefix="vitdeploy-calibrate-") as tmp:
        work = Path(tmp)
        src, out, log = work / "model.onnx", work / name, work / f"calibration.{precision.value}.log"
        shutil.copyfile(fp32_path, src)  # ModelOpt may write intermediates beside its input
        try:
            conv = _convert(precision, src, out, log=log, calib=calib, layers=layers, plan=plan, recipe=recipe,
                            scorer=scorer, options=options, progress=progress,
                            keep_fp32=tuple(bundle.manifest.preprocessing.fused_nodes))
        except CalibrationError as exc:
            raise CalibrationError(f"{exc}\n(full log: {_keep_log(log, bundle.path)})") from exc

        say(f"measuring {precision.value} against FP32 on {calib.heldout_samples} held-out frames", 0, 0)
        report = build_report(precision=precision.value, graph=graph.name, reference=scorer.reference,
                              candidate=run_graph(out, calib.heldout, batch=calib.set_cameras), scorer=scorer,
                              heldout_sha256=calib.summary()["heldout_sha256"], min_agreement=options.min_agreement)
        settings = {"data": calib.summary(), "modelopt": _modelopt_version(), **conv.summary()}
        report.extra = {"settings": settings, **conv.report_extra()}

        # ---- write: ONNX, report, log, then the manifest last -------------------------------------------
        target = bundle.path / name
        with atomic_path(target) as staged:
            shutil.copyfile(out, staged)
        report_path = bundle.path / f"calibration_report.{precision.value}.json"
        atomic_write_text(report_path, report.to_json())
        log_path = _keep_log(log, bundle.path)

    seconds = time.perf_counter() - start
    task = report.task
    agreement = None if task is None else {"metric": task.metric, "value": task.value, "min": options.min_agreement}
    status = Status.GOOD if report.passed else Status.REJECTED
    variant = Variant(precision=precision, file=name, sha256=sha256_file(target), status=status, created_at=_now(),
                      details={**settings, "report": report_path.name, "log": log_path.name, "agreement": agreement,
                               "seconds": round(seconds, 1)})
    graph.set_variant(variant)
    manifest.calibration[precision.value] = {
        "graph": graph.name, "file": name, "status": status.value, "report": report_path.name,
        "samples": calib.samples, "heldout": calib.heldout_samples, "data_sha256": calib.sha256,
        "agreement": agreement,
    }
    bundle.save()
    return CalibrationResult(bundle=bundle, precision=precision, onnx_path=target, report_path=report_path,
                             log_path=log_path, variant=variant, report=report, data=calib, placement=conv.placement,
                             fp16=conv.fp16, sensitivity=conv.ranking, fallback=conv.fallback, seconds=seconds)


def rig_cameras(head: Head, manifest: Manifest) -> int | None:
    """The cameras of one frame set for a rig-level graph (the ones it was exported for), else None:
    such a graph calibrates on whole frame sets, its camera axis is no frame axis."""
    if not head.geometry_inputs:
        return None
    return len(head.exported_geometry()) or manifest.max_cameras


def _load(path: Path) -> onnx.ModelProto:
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(path), load_external_data=False)
    except (OSError, DecodeError) as exc:
        raise BundleError(f"cannot read {path} as ONNX ({exc}); re-export the bundle") from exc


def _convert(precision: Precision, src: Path, out: Path, *, log: Path, calib: CalibrationData, layers: list[Layer],
             plan: Placement | None, recipe: Int8Recipe, scorer: TaskScorer, options: CalibrationOptions,
             progress: ProgressFn | None, keep_fp32: tuple[str, ...] = ()) -> _Conversion:
    say = progress or (lambda _stage, _done, _total: None)
    if precision is Precision.FP16:
        say("converting to FP16 with ModelOpt AutoCast", 0, 0)
        return _Conversion(recipe=recipe, fp16=convert_fp16(src, out, calibration=calib.calibration, layers=layers,
                                                            log_path=log, keep_fp32=keep_fp32,
                                                            set_cameras=calib.set_cameras))
    say(f"quantizing to INT8 with ModelOpt ({recipe.method.value} calibration, {calib.samples} {calib.unit})", 0, 0)
    conv = _Conversion(recipe=recipe, placement=quantize_int8(src, out, calibration=calib.calibration, placement=plan,
                                                              recipe=recipe, log_path=log,
                                                              set_cameras=calib.set_cameras))
    if not (options.sensitivity or options.auto_fallback):
        return conv
    feeds = sensitivity_feeds(calib.heldout)
    small = TaskScorer(head=scorer.head, reference=run_graph(src, feeds))
    int8_model = onnx.load(str(out))
    conv.ranking = rank_groups(int8_model, conv.placement, feeds=feeds, scorer=small, progress=progress)
    if not options.auto_fallback or options.min_agreement is None:
        return conv
    conv.fallback = auto_fallback(int8_model, conv.placement, conv.ranking, feeds=feeds, scorer=small,
                                  min_agreement=options.min_agreement, progress=progress)
    if conv.fallback.excluded:
        # Exact layer paths, not group names: a group name would also match its sub-modules.
        paths = [p for g in conv.ranking if g.group in conv.fallback.excluded for p in g.layers]
        conv.recipe = replace(recipe, exclude=tuple(recipe.exclude) + tuple(paths))
        say(f"re-quantizing with {len(conv.fallback.excluded)} layer groups in high precision", 0, 0)
        conv.placement = quantize_int8(src, out, calibration=calib.calibration, recipe=conv.recipe,
                                       placement=plan_int8(layers, conv.recipe), log_path=log)
    return conv
