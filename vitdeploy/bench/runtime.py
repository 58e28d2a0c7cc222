"""The runtime benchmark (`vitdeploy bench --runtime`): is the pipeline, not the model, the limit?

With inference taking a few milliseconds (a ViT on a Jetson or DRIVE GPU) the Python work around
it — decode, batching, post-processing, sinks — decides throughput. This runs the whole runtime
(``run_rig``) free-running on N video files and compares it with decoding the same files alone:

* decode-only: N threads decoding the N files with the same decoder (OpenCV ``VideoCapture.read``
  into a new array per frame, looping), nothing else, in the same process;
* runtime: ``run_rig`` on a rig of the same files (looping, free-running, a JSONL sink), with the
  real backend or a stand-in that sleeps ``stand_in_ms`` per frame set (``time.sleep`` releases the
  GIL, as a GPU call does) and returns the model's outputs for real frames, so post-processing
  decodes real detections.

Decode-only and runtime rounds alternate (decode, runtime, decode, ...); each runtime round is
compared with the mean of the decode rounds around it. CPU milliseconds per set are split by
thread (``time.pthread_getcpuclockid``): camera threads, each pipeline stage, sinks, and the rest
of the process (the decoder's and ONNX Runtime's own threads: "library threads").
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitdeploy.bundle import Bundle
from vitdeploy.errors import DataError
from vitdeploy.runtime.backends.base import Backend

#: Where generated videos are kept between runs.
DEFAULT_CACHE = Path.home() / ".cache" / "vitdeploy" / "bench_runtime"
#: Frames per generated video (they loop).
GENERATED_FRAMES = 60
#: The issue-18 target: the runtime keeps at least this fraction of decode-only throughput.
TARGET_RATIO = 0.9


@dataclass(frozen=True)
class RuntimeSettings:
    """``seconds`` per round; ``rounds`` runtime rounds, each between two decode-only rounds;
    ``stand_in_ms``: a backend that sleeps this long per set instead of the real one (None: real)."""

    seconds: float = 10.0
    rounds: int = 2
    stand_in_ms: float | None = 5.0
    jsonl: bool = True
    decoder_threads: int = 0  # FFmpeg threads per camera, both ways (0: the rig's default, cores / cameras)


@dataclass
class RuntimeRound:
    """One runtime round: frame sets/s and process CPU ms per set (by thread group), against the
    decode-only rounds before and after it (sets/s)."""

    sets: int
    sets_per_s: float
    cpu_ms_per_set: float
    cpu_ms_by_thread: dict[str, float]
    decode_before: float
    decode_after: float
    zero_copy_sets: int
    stage_p50_ms: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.sets_per_s / max(1e-9, (self.decode_before + self.decode_after) / 2)


@dataclass
class RuntimeReport:
    cameras: int
    frame_size: tuple[int, int]
    decoder_threads: int
    backend: str
    settings: RuntimeSettings
    decode_cpu_ms_per_set: list[float] = field(default_factory=list)
    rounds: list[RuntimeRound] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)

    @property
    def decode_per_s(self) -> float:
        return float(np.mean([r.decode_before for r in self.rounds] + [self.rounds[-1].decode_after]))

    @property
    def runtime_per_s(self) -> float:
        return float(np.mean([r.sets_per_s for r in self.rounds]))

    @property
    def ratio(self) -> float:
        return self.runtime_per_s / max(1e-9, self.decode_per_s)

    @property
    def inference_busy(self) -> float:
        """Fraction of the time inference ran (sets/s x p50 inference s): near 1, the backend sets the pace."""
        return float(np.mean([r.sets_per_s * r.stage_p50_ms.get("infer", 0.0) / 1e3 for r in self.rounds]))

    def lines(self, *, target: float = TARGET_RATIO) -> list[str]:
        """The report as text: one line per round (and its CPU split by thread), then the verdict."""
        out = [f"{self.cameras} cameras x {self.frame_size[0]}x{self.frame_size[1]} ({self.decoder_threads} decoder "
               f"thread{'s' if self.decoder_threads > 1 else ''} each), backend {self.backend}; "
               f"load average {self.load[0]:.2f} -> {self.load[1]:.2f}"]
        for i, r in enumerate(self.rounds):
            stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r.cpu_ms_by_thread.items(), key=lambda kv: -kv[1])
                               if v >= 0.05)
            out.append(f"round {i}: decode-only {r.decode_before:.1f} -> {r.decode_after:.1f} sets/s; runtime "
                       f"{r.sets_per_s:.1f} sets/s, {r.cpu_ms_per_set:.1f} CPU ms/set ({r.sets} sets, "
                       f"{r.zero_copy_sets} decoded straight into the model's batch); ratio {r.ratio:.3f}")
            out.append(f"         CPU ms/set by thread: {stages}")
        decode_cpu = float(np.mean(self.decode_cpu_ms_per_set))
        out.append(f"decode-only {self.decode_per_s:.1f} sets/s ({decode_cpu:.1f} CPU ms/set); runtime "
                   f"{self.runtime_per_s:.1f} sets/s; ratio {self.ratio:.3f} (target >= {target:g})")
        if self.inference_busy >= 0.9:
            out.append(f"inference ran {self.inference_busy:.0%} of the time: the backend, not the pipeline, "
                       "sets the pace here")
        return out

    def to_dict(self) -> dict[str, object]:
        return {"cameras": self.cameras, "frame_size": list(self.frame_size), "decoder_threads": self.decoder_threads,
                "backend": self.backend,
                "seconds": self.settings.seconds, "load_average": list(self.load),
                "decode_only_sets_per_s": self.decode_per_s, "runtime_sets_per_s": self.runtime_per_s,
                "ratio": self.ratio, "decode_only_cpu_ms_per_set": self.decode_cpu_ms_per_set,
                "rounds": [{**r.__dict__, "ratio": r.ratio} for r in self.rounds]}


# ---- CPU per thread ---------------------------------------------------------------------------

def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _group(name: str) -> str:
    if name.startswith("source-"):
        return "cameras (decode)"
    if name.startswith("pipeline-"):
        return name.removeprefix("pipeline-")
    if name.startswith("sink-"):
        return "sink " + name.removeprefix("sink-")
    return "main" if name == "MainThread" else "other python"


class CpuMeter:
    """Process CPU seconds split by thread from its making to ``split``. Threads that end before
    (a run's own) are read by ``sample`` calls made while they live; the last moments of a thread
    may be missed and count under "library threads" (the rest of the process)."""

    def __init__(self) -> None:
        self.start_total = _cpu_seconds()
        self.seen: dict[threading.Thread, tuple[str, float, float]] = {}  # thread -> (group, first, last)
        self.sample()

    def sample(self) -> None:
        for t in threading.enumerate():
            try:
                seconds = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
            except (OSError, TypeError, AttributeError):  # ended meanwhile, or no per-thread clocks here
                continue
            group, first, _ = self.seen.get(t, (_group(t.name), seconds, seconds))
            self.seen[t] = (group, first, seconds)

    def split(self) -> tuple[float, dict[str, float]]:
        """(process CPU seconds, CPU seconds per thread group incl. "library threads")."""
        total = _cpu_seconds() - self.start_total
        by: dict[str, float] = defaultdict(float)
        for group, first, last in self.seen.values():
            by[group] += last - first
        by["library threads"] = max(0.0, total - sum(by.values()))
        return total, dict(by)


# ---- what is measured -------------------------------------------------------------------------

def generated_videos(cache: Path, *, cameras: int, size: tuple[int, int], frames: int = GENERATED_FRAMES,
                     fps: float = 30.0) -> list[Path]:
    """N mp4v files of synthetic driving scenes at ``size`` (H, W) pixels, ``frames`` long, made
    once under ``cache`` (renders at a quarter size, scaled up, with noise so they do not compress
    to nothing)."""
    import cv2

    from vitdeploy.data.scenes import SceneGenerator

    h, w = size
    folder = cache / f"videos_{h}x{w}_{frames}f"
    paths = [folder / f"cam{i}.mp4" for i in range(cameras)]
    missing = [p for p in paths if not p.is_file()]
    if not missing:
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    gen = SceneGenerator(size=(max(32, h // 4), max(32, w // 4)), cameras=min(cameras, 6), seed=3, with_masks=False)
    for path in missing:
        i = paths.index(path)
        tmp = path.with_suffix(".tmp.mp4")  # OpenCV picks the container by the file's extension
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise DataError(f"OpenCV cannot write video {tmp} (mp4v); check the folder and the OpenCV build")
        try:
            for k in range(frames):
                big = cv2.resize(gen.frame(k, i % 6).image, (w, h), interpolation=cv2.INTER_CUBIC)
                noise = np.random.default_rng(k * 31 + i).integers(0, 12, big.shape, dtype=np.uint8)
                writer.write(cv2.cvtColor(cv2.add(big, noise), cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        tmp.rename(path)  # a run stopped half-way leaves no half video under the name that is reused
    return paths


def first_frames(paths: list[Path]) -> list[np.ndarray]:
    """The first frame (BGR) of each video; a file OpenCV cannot read is an error naming it."""
    from vitdeploy.data.frames import open_video

    frames = []
    for path in paths:
        cap = open_video(path)
        ok, bgr = cap.read()
        cap.release()
        if not ok:
            raise DataError(f"video {path} has no frame OpenCV can decode; give an mp4/mkv/avi file with frames")
        frames.append(bgr)
    return frames


def first_batch(bundle: Bundle, paths: list[Path]) -> np.ndarray:
    """The model input of the videos' first frames, one per camera, as the runtime prepares it."""
    from vitdeploy.runtime.preprocess import prepare_batch

    frames = first_frames(paths)
    batch, _ = prepare_batch(frames, bundle.manifest.preprocessing, allow_resize=True, orders=["BGR"] * len(frames))
    return batch


def stand_in_backend(bundle: Bundle, batch: np.ndarray, *, ms: float) -> Backend:
    """A backend that sleeps ``ms`` per ``infer`` (the GIL released, as in a GPU call) and returns
    the FP32 model's outputs for ``batch`` (real frames: ``first_batch``), computed once here."""
    from vitdeploy.bundle.manifest import CAMERA_AXIS
    from vitdeploy.runtime.backends import open_backend

    real = open_backend("onnxruntime", bundle)
    try:
        outputs = real.infer({real.inputs[0].name: batch.astype(real.inputs[0].dtype, copy=False)})
    finally:
        real.close()

    class StandIn(Backend):
        name = "stand-in"

        def _infer(self, feed):
            time.sleep(ms / 1e3)
            return {k: v.copy() for k, v in outputs.items()}

        def describe(self):
            return {"backend": f"stand-in {ms:g} ms"}

    g = bundle.manifest.graph()
    return StandIn(inputs=g.inputs, outputs=g.outputs, dim_ranges={CAMERA_AXIS: (1, bundle.manifest.max_cameras)})


def decode_only(paths: list[Path], *, seconds: float, threads: int | None = None) -> tuple[float, float]:
    """Each file decoded in its own thread (``VideoCapture.read``, looping, ``threads`` FFmpeg threads
    each as the rig's cameras have) for ``seconds``; returns (frame sets/s: the slowest camera's
    frames per second, process CPU ms per set)."""
    import cv2

    from vitdeploy.data.frames import open_video

    counts = [0] * len(paths)
    stop = threading.Event()
    errors: list[BaseException] = []

    def decode(i: int) -> None:
        try:
            cap = open_video(paths[i], threads=threads)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)
            return
        while not stop.is_set():
            ok, _ = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            counts[i] += 1
        cap.release()

    workers = [threading.Thread(target=decode, args=(i,), daemon=True) for i in range(len(paths))]
    cpu, start = _cpu_seconds(), time.perf_counter()
    for t in workers:
        t.start()
    time.sleep(seconds)
    stop.set()
    n, elapsed, cpu_used = min(counts), time.perf_counter() - start, _cpu_seconds() - cpu
    for t in workers:
        t.join()
    if errors:
        raise errors[0]
    return n / elapsed, cpu_used / max(1, sum(counts) / len(paths)) * 1e3


def runtime_round(rig, bundle: Bundle, backend: Backend, *, out: Path, seconds: float):
    """One free-running ``run_rig`` of ``seconds``: (summary, sets/s, CPU ms per set, by thread group)."""
    from vitdeploy.runtime.run import RunOptions, run_rig

    meter = CpuMeter()
    done = threading.Event()

    def poll() -> None:  # the run's threads end with it: read their clocks while they live
        while not done.wait(0.05):
            meter.sample()

    poller = threading.Thread(target=poll, name="bench-poll", daemon=True)
    poller.start()
    try:
        summary = run_rig(rig, bundle=bundle, backend=backend,
                          options=RunOptions(out=out, duration=seconds, handle_sigint=False))
    finally:
        done.set()
        poller.join()
    total, by = meter.split()
    by.pop("other python", None)  # the poller itself
    sets = max(1, summary.sets_out)
    rate = summary.throughput(skip=min(5, max(0, summary.sets_out - 5)))
    return summary, rate, total / sets * 1e3, {k: v / sets * 1e3 for k, v in by.items()}


def measure_runtime(bundle: Bundle, videos: list[Path], backend: Backend, settings: RuntimeSettings, *,
                    progress: Callable[[str, float], None] | None = None) -> RuntimeReport:
    """Alternate decode-only and runtime rounds on ``videos`` (one camera each) with ``backend``;
    ``progress(what, fraction)`` is called as rounds finish."""
    from vitdeploy.runtime.rig import Camera, ModelConfig, Outputs, Rig, VideoMode
    from vitdeploy.runtime.sources import decoder_threads

    size = first_frames(videos[:1])[0].shape[:2]
    threads = decoder_threads(settings.decoder_threads, len(videos))
    cams = tuple(Camera(name=f"cam{i}", source=str(p), fps=30.0, loop=True) for i, p in enumerate(videos))
    rig = Rig(cameras=cams, model=ModelConfig(bundle=bundle.path), rate_hz=0.0, latency_budget_ms=1e6,
              startup_timeout_s=10.0, decoder_threads=threads, outputs=Outputs(jsonl="frames.jsonl" if settings.jsonl else None,
                                                      video=VideoMode.NONE, live=False))
    report = RuntimeReport(cameras=len(videos), frame_size=(int(size[0]), int(size[1])), decoder_threads=threads,
                           backend=", ".join(v if k == "backend" else f"{k} {v}" for k, v in backend.describe().items()),
                           settings=settings)
    steps, done = 2 * settings.rounds + 1, 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(what, done / steps)

    load = os.getloadavg()
    before, cpu = decode_only(videos, seconds=settings.seconds, threads=threads)
    report.decode_cpu_ms_per_set.append(cpu)
    step("decode-only")
    with tempfile.TemporaryDirectory(prefix="vitdeploy-bench-runtime.") as tmp:
        for r in range(settings.rounds):
            summary, rate, cpu_ms, by = runtime_round(rig, bundle, backend, out=Path(tmp) / f"run{r}",
                                                      seconds=settings.seconds)
            step("runtime")
            after, cpu = decode_only(videos, seconds=settings.seconds, threads=threads)
            report.decode_cpu_ms_per_set.append(cpu)
            step("decode-only")
            p50 = {k: summary.percentiles(k, (50,))[50] for k in ("preprocess", "infer", "postprocess")
                   if k in summary.latency_ms}
            report.rounds.append(RuntimeRound(sets=summary.sets_out, sets_per_s=rate, cpu_ms_per_set=cpu_ms,
                                              cpu_ms_by_thread=by, decode_before=before, decode_after=after,
                                              zero_copy_sets=summary.zero_copy_sets, stage_p50_ms=p50))
            before = after
    report.load = (load[0], os.getloadavg()[0])
    return report
