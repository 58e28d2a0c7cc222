"""Measuring configurations: back-to-back inference, and a rig against a deadline on a real clock.

Throughput mode feeds one backend the same prepared N-camera batches back to back and times each
``infer`` (warm-up excluded): the model's own latency and throughput on this machine. Deadline
mode runs the whole runtime (``run_rig``: paced cameras, sync, preprocess, backend, postprocess)
with cameras at F fps and counts what an AD engineer signs off on: sets later than the budget,
sets dropped, jitter of the completions and skew between the cameras of a set.

A configuration that cannot run here (no INT8 ONNX in the bundle, TensorRT missing, FP16 torch
on a CPU) is recorded as skipped with the library's own message; anything that is not a
``VitDeployError`` is a bug and propagates.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vitdeploy.bench.machine import MemoryProbe
from vitdeploy.bench.report import PHASES, BenchReport, ConfigResult, DeadlineResult
from vitdeploy.bench.stats import Jitter, LatencyStats
from vitdeploy.bundle import Bundle
from vitdeploy.doctor import gather
from vitdeploy.errors import BundleError, DataError, VitDeployError
from vitdeploy.heads import head_for
from vitdeploy.runtime.backends import DEFAULT_DEVICES, Backend, open_backend
from vitdeploy.runtime.configs import Configuration
from vitdeploy.runtime.machine import describe_machine
from vitdeploy.runtime.preprocess import preprocess_frames
from vitdeploy.runtime.rig_geometry import exported_geometry, geometry_inputs
from vitdeploy.runtime.sources.base import Source

if TYPE_CHECKING:
    from torch import nn

#: Iterations when neither iterations nor a duration is given (throughput mode).
DEFAULT_ITERATIONS = 100
#: Seconds a deadline run lasts when neither iterations nor a duration is given.
DEFAULT_DEADLINE_S = 10.0
#: Distinct frame sets fed in turn, so no backend sees one batch forever.
DISTINCT_BATCHES = 2

#: progress(config, fraction done 0..1 or None when unknown)
ProgressFn = Callable[[Configuration, float | None], None]


@dataclass(frozen=True)
class Deadline:
    """Deadline mode: cameras deliver ``fps`` frames per second each, and a set's results are due
    ``budget_ms`` milliseconds after its capture."""

    fps: float
    budget_ms: float

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise DataError(f"--fps {self.fps:g}: the camera rate must be a positive number of frames per second")
        if not self.budget_ms > 0:
            raise DataError(f"--budget-ms {self.budget_ms:g}: the deadline must be a positive number of ms")


@dataclass(frozen=True)
class BenchSettings:
    """How long to measure: ``warmup`` inferences first (not measured), then ``iterations`` frame
    sets or ``duration_s`` seconds (not both; neither: 100 iterations, or 10 s in deadline mode).
    ``allow_rejected`` measures graphs calibration rejected too (recorded in the report)."""

    warmup: int = 10
    iterations: int | None = None
    duration_s: float | None = None
    deadline: Deadline | None = None
    allow_rejected: bool = False

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise DataError(f"--warmup {self.warmup}: give 0 or more warm-up iterations")
        if self.iterations is not None and self.duration_s is not None:
            raise DataError("give --iterations or --duration, not both")
        if self.iterations is not None and self.iterations < 1:
            raise DataError(f"--iterations {self.iterations}: measure at least 1 iteration")
        if self.duration_s is not None and not self.duration_s > 0:
            raise DataError(f"--duration {self.duration_s:g}: give a positive number of seconds")

    @property
    def limits(self) -> tuple[int | None, float | None]:
        """(iterations, seconds) with the default filled in."""
        if self.iterations is None and self.duration_s is None:
            return (None, DEFAULT_DEADLINE_S) if self.deadline else (DEFAULT_ITERATIONS, None)
        return self.iterations, self.duration_s

    def to_dict(self) -> dict[str, object]:
        iterations, duration = self.limits
        return {"warmup": self.warmup, "iterations": iterations, "duration_s": duration,
                "fps": self.deadline.fps if self.deadline else None,
                "budget_ms": self.deadline.budget_ms if self.deadline else None,
                "mode": "deadline" if self.deadline else "throughput", "allow_rejected": self.allow_rejected}


# ---- frames --------------------------------------------------------------------------------------

def camera_frames(bundle: Bundle, cameras: int, *, batches: int = DISTINCT_BATCHES, seed: int = 0) -> list[list[np.ndarray]]:
    """``batches`` frame sets of ``cameras`` synthetic frames (H, W, 3) uint8 RGB at the model's
    input size (its source size for fused-preprocessing bundles); more than the synthetic rig's
    six cameras repeat its views."""
    from vitdeploy.data.scenes import CAMERA_NAMES, SceneGenerator

    pre = bundle.manifest.preprocessing
    size = tuple(pre.source_size) if pre.fused and pre.source_size else tuple(bundle.manifest.image_size)
    gen = SceneGenerator(size=size, cameras=min(cameras, len(CAMERA_NAMES)), seed=seed, with_masks=False)
    return [[gen.frame(t, i % len(gen.cameras)).image for i in range(cameras)] for t in range(batches)]


def make_feeds(bundle: Bundle, backend: Backend, frame_sets: list[list[np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Model inputs for each frame set, preprocessed as the runtime does (raw uint8 frames for a
    fused-preprocessing graph), in the backend's input dtype; a rig-level graph also gets the
    geometry of the first cameras the bundle was exported with (computed once, as a run does)."""
    head = head_for(bundle.manifest)
    if len(backend.inputs) != 1 and not head.geometry_inputs:
        raise BundleError(f"bench feeds single-input graphs; {bundle.manifest.model} takes "
                          f"{[s.name for s in backend.inputs]}")
    spec = backend.inputs[0]
    geometry: dict[str, np.ndarray] = {}
    if head.geometry_inputs and frame_sets:
        geometry = geometry_inputs(exported_geometry(head)[:len(frame_sets[0])], bundle.manifest.preprocessing)
    feeds = []
    for frames in frame_sets:
        if bundle.manifest.preprocessing.fused:
            batch = np.ascontiguousarray(np.stack(frames))
        else:
            batch, _ = preprocess_frames(frames, bundle.manifest.preprocessing)
        feeds.append({spec.name: batch.astype(spec.dtype, copy=False), **geometry})
    return feeds


# ---- throughput mode -----------------------------------------------------------------------------

@dataclass
class Measurement:
    """Back-to-back inference: per-call latencies (ms), the backend's phase split per call (ms,
    only phases it reported), and the wall time of the measured loop (s)."""

    latency_ms: np.ndarray
    phases_ms: dict[str, np.ndarray]
    elapsed_s: float

    @property
    def sets_per_s(self) -> float:
        return len(self.latency_ms) / self.elapsed_s if self.elapsed_s > 0 else float("nan")


def measure_backend(backend: Backend, feeds: list[dict[str, np.ndarray]], *, warmup: int, iterations: int | None,
                    duration_s: float | None, progress: Callable[[float | None], None] | None = None) -> Measurement:
    """Time ``backend.infer`` on ``feeds`` in turn: ``warmup`` calls first, then ``iterations``
    calls or as many as fit in ``duration_s`` seconds (at least one)."""
    if not feeds:
        raise DataError("no inputs to benchmark with")
    if (iterations is None) == (duration_s is None):
        raise DataError("measure either a number of iterations or a duration")
    for i in range(warmup):
        backend.infer(feeds[i % len(feeds)])
    latency: list[float] = []
    phases: dict[str, list[float]] = {p: [] for p in PHASES}
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        backend.infer(feeds[len(latency) % len(feeds)])
        latency.append((time.perf_counter() - t0) * 1e3)
        timing = backend.last_timing
        for p in PHASES:
            value = getattr(timing, f"{p}_ms")
            if value is not None:
                phases[p].append(float(value))
        elapsed = time.perf_counter() - start
        done = len(latency) / iterations if iterations is not None else elapsed / duration_s
        if progress is not None:
            progress(min(done, 1.0))
        if done >= 1.0:
            break
    return Measurement(np.asarray(latency), {p: np.asarray(v) for p, v in phases.items() if v}, elapsed)


# ---- deadline mode ------------------------------------------------------------------------------

class ReplaySource(Source):
    """A paced camera that replays pre-rendered frames, so the camera threads of a deadline run
    cost nothing and never make a set late themselves."""

    def __init__(self, camera: str, frames: list[np.ndarray], *, fps: float):
        super().__init__(camera, fps=fps, paced=True)
        self.frames = frames
        self._k = 0

    def describe(self) -> str:
        h, w = self.frames[0].shape[:2]
        return f"replay {len(self.frames)} synthetic frames {h}x{w}"

    def _open(self) -> None:
        """Nothing to open: the frames are in memory."""

    def _read(self) -> np.ndarray:
        image = self.frames[self._k % len(self.frames)]
        self._k += 1
        return image


def measure_deadline(bundle: Bundle, backend: Backend, frame_sets: list[list[np.ndarray]], *, deadline: Deadline,
                     iterations: int | None, duration_s: float | None,
                     progress: Callable[[float | None], None] | None = None) -> tuple[DeadlineResult, np.ndarray]:
    """Run the runtime with ``len(frame_sets[0])`` cameras at ``deadline.fps`` through ``backend``
    (already warm) for ``iterations`` sets or ``duration_s`` seconds. Returns the summary and the
    raw end-to-end latency of every completed set (ms)."""
    from vitdeploy.runtime.rig import Outputs, synthetic_rig
    from vitdeploy.runtime.run import RunOptions, run_rig

    cameras = len(frame_sets[0])
    h, w = frame_sets[0][0].shape[:2]
    rig = synthetic_rig(cameras, fps=deadline.fps, size=(h, w), rate_hz=deadline.fps,
                        latency_budget_ms=deadline.budget_ms, outputs=Outputs(jsonl=None, live=False))
    sources = {name: ReplaySource(name, [fs[i] for fs in frame_sets], fps=deadline.fps)
               for i, name in enumerate(rig.camera_names)}
    expected_s = duration_s if duration_s is not None else iterations / deadline.fps
    stop_ticker = threading.Event()
    ticker = None
    if progress is not None:
        started = time.monotonic()

        def tick() -> None:
            while not stop_ticker.wait(0.2):
                progress(min((time.monotonic() - started) / expected_s, 0.99))

        ticker = threading.Thread(target=tick, name="bench-progress", daemon=True)
        ticker.start()
    try:
        summary = run_rig(rig, bundle=bundle, backend=backend, sources=sources,
                          options=RunOptions(max_frames=iterations, duration=duration_s, handle_sigint=False))
    finally:
        stop_ticker.set()
        if ticker is not None:
            ticker.join()
    if progress is not None:
        progress(1.0)
    e2e = summary.latency_ms["end_to_end"]
    result = DeadlineResult(
        fps=deadline.fps, budget_ms=deadline.budget_ms, duration_s=summary.duration_s,
        sets_expected=int(round(summary.duration_s * deadline.fps)), sets_out=summary.sets_out,
        late=int(np.sum(e2e > deadline.budget_ms)), dropped=summary.sets_dropped,
        missing_frames=sum(c.missing for c in summary.cameras),
        end_to_end=LatencyStats.from_samples(e2e), infer=LatencyStats.from_samples(summary.latency_ms["infer"]),
        jitter=Jitter.from_completion_times(summary.done_times), skew=LatencyStats.from_samples(summary.skew_ms),
        stopped_by=summary.stopped_by)
    return result, e2e


# ---- one configuration, and all of them ----------------------------------------------------------

def run_configuration(bundle: Bundle, config: Configuration, settings: BenchSettings, *,
                      frame_sets: list[list[np.ndarray]], model: nn.Module | None = None,
                      progress: Callable[[float | None], None] | None = None) -> ConfigResult:
    """Open ``config``'s backend, measure it as ``settings`` say, close it; a ``VitDeployError``
    (cannot open, cannot run) makes the result skipped with its message."""
    if config.cameras > bundle.manifest.max_cameras:
        return ConfigResult.skipped(config, f"{config.cameras} cameras, the bundle takes 1..{bundle.manifest.max_cameras} "
                                            f"(re-export with --max-cameras {config.cameras})")
    device = config.device or DEFAULT_DEVICES[config.backend]
    cuda_probe = device if config.backend == "torch" and device.startswith("cuda") else None
    iterations, duration_s = settings.limits
    probe = MemoryProbe(cuda_device=cuda_probe)
    try:
        probe.start()
        # Back to back, nothing else uses the CPU between inferences: onnxruntime's threads may spin
        # as torch's do. A deadline run is the runtime, with camera threads: the runtime's default.
        with open_backend(config.backend, bundle, precision=config.precision, device=config.device,
                          model=model, allow_rejected=settings.allow_rejected,
                          exclusive_cpu=settings.deadline is None) as backend:
            feeds = make_feeds(bundle, backend, frame_sets)
            info = backend.describe()
            if settings.allow_rejected and config.backend != "torch" and bundle.rejected_variants(config.precision):
                info["allow_rejected"] = "; ".join(bundle.rejected_variants(config.precision))
            if settings.deadline is None:
                m = measure_backend(backend, feeds, warmup=settings.warmup, iterations=iterations,
                                    duration_s=duration_s, progress=progress)
                memory = probe.stop()
                return ConfigResult(config=config, latency=LatencyStats.from_samples(m.latency_ms),
                                    sets_per_s=m.sets_per_s,
                                    transfer={p: LatencyStats.from_samples(v) for p, v in m.phases_ms.items()},
                                    memory=memory, backend_info=info, samples_ms=m.latency_ms)
            for i in range(settings.warmup):
                backend.infer(feeds[i % len(feeds)])
            d, e2e = measure_deadline(bundle, backend, frame_sets, deadline=settings.deadline,
                                      iterations=iterations, duration_s=duration_s, progress=progress)
            memory = probe.stop()
            rate = d.sets_out / d.duration_s if d.duration_s > 0 else float("nan")
            return ConfigResult(config=config, latency=d.end_to_end, sets_per_s=rate, memory=memory,
                                backend_info=info, deadline=d, samples_ms=e2e)
    except VitDeployError as exc:
        return ConfigResult.skipped(config, str(exc))


def _prime(bundle: Bundle, config: Configuration, model: nn.Module | None, *, allow_rejected: bool) -> None:
    """Open and close ``config``'s backend once, unmeasured, so that one-time library start-up
    (onnxruntime's and torch's own allocations) is not charged to the first configuration's memory.
    An error here is not lost: the measured run that follows opens the same backend and reports it."""
    try:
        open_backend(config.backend, bundle, precision=config.precision, device=config.device, model=model,
                     allow_rejected=allow_rejected).close()
    except VitDeployError:
        return


def _exported_model(bundle: Bundle) -> nn.Module:
    from vitdeploy.models.exported import exported_model

    return exported_model(bundle.manifest)


def bench_bundle(bundle: Bundle, configs: list[Configuration], settings: BenchSettings, *,
                 torch_model: Callable[[], nn.Module] | None = None,
                 progress: ProgressFn | None = None) -> BenchReport:
    """Measure every configuration in turn and return the report.

    ``torch_model`` builds the bundle's PyTorch model (default ``exported_model`` of the manifest;
    called once, only if a torch configuration is planned; each torch configuration gets its own copy, so an FP16 run cannot round the
    weights of a later FP32 one). Raises nothing for a configuration that cannot run — see
    ``ConfigResult.reason`` — and ``DataError`` when no configuration is planned.
    """
    if not configs:
        raise DataError("no configuration to benchmark")
    frames_by_cameras: dict[int, list[list[np.ndarray]]] = {}
    model: nn.Module | None = None
    model_error: str | None = None
    primed: set[str] = set()
    results = []
    for config in configs:
        report_progress = (lambda f, c=config: progress(c, f)) if progress is not None else None
        if report_progress is not None:
            report_progress(0.0)
        this_model = None
        if config.backend == "torch":
            if model is None and model_error is None:
                try:
                    model = torch_model() if torch_model is not None else _exported_model(bundle)
                except VitDeployError as exc:
                    model_error = f"cannot build the PyTorch model: {exc}"
            if model_error is not None:
                results.append(ConfigResult.skipped(config, model_error))
                continue
            this_model = copy.deepcopy(model)
        if config.cameras not in frames_by_cameras and config.cameras <= bundle.manifest.max_cameras:
            frames_by_cameras[config.cameras] = camera_frames(bundle, config.cameras)
        if config.backend not in primed:
            primed.add(config.backend)
            _prime(bundle, config, copy.deepcopy(this_model) if this_model is not None else None,
                   allow_rejected=settings.allow_rejected)
        results.append(run_configuration(bundle, config, settings, frame_sets=frames_by_cameras.get(config.cameras, []),
                                         model=this_model, progress=report_progress))
        if report_progress is not None:
            report_progress(1.0)
    m = bundle.manifest
    return BenchReport(
        bundle={"path": str(bundle.path), "model": m.model, "head": m.head.kind, "image_size": list(m.image_size),
                "max_cameras": m.max_cameras, "precisions": sorted({v.precision.value for g in m.graphs
                                                                     for v in g.variants})},
        machine={**describe_machine(), "doctor": gather(open_gpu=False).to_dict()}, settings=settings.to_dict(),
        results=results,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
