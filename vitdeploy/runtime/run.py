"""``run_rig``: a rig's cameras through a bundle's model into JSONL, video and a live view.

This is the library function behind `vitdeploy run`; `bench`, `eval` and the demo call it too.
It opens what it is not given (bundle, backend, sources, sinks), runs the pipeline until a frame
limit, a duration, a stop event, Ctrl-C or the end of every source, always closes the files, and
returns a ``RunSummary`` with the raw per-set latencies.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitdeploy.bundle import Bundle
from vitdeploy.errors import BackendError, BundleError, DataError
from vitdeploy.heads import Decoded, Head, head_for
from vitdeploy.runtime.backends import open_backend
from vitdeploy.runtime.backends.base import Backend
from vitdeploy.runtime.batches import CameraRows
from vitdeploy.runtime.pipeline import DecodeFn, Pipeline, QueuePolicy
from vitdeploy.runtime.rig import Rig, VideoMode
from vitdeploy.runtime.rig_geometry import rig_inputs
from vitdeploy.runtime.sink_thread import SinkThread
from vitdeploy.runtime.sinks import JsonlSink, LiveView, VideoSink
from vitdeploy.runtime.sources import Source, decoder_threads, open_source
from vitdeploy.runtime.stats import RunSummary, Stats
from vitdeploy.runtime.sync import Synchronizer

if TYPE_CHECKING:
    from rich.console import Console
    from torch import nn

#: How long stopping may take: in-flight sets drain, then threads are left behind, seconds.
STOP_TIMEOUT_S = 10.0
#: How long stopping waits for the camera threads, all together; one blocked in a driver call is
#: left behind (a daemon thread; a capture's process is killed), seconds.
SOURCES_STOP_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class RunOptions:
    """Where a run writes and when it stops; the defaults are `vitdeploy run`'s.

    ``out``: folder for the JSONL and videos (None: the rig's ``[outputs] dir``); ``max_frames``:
    stop after this many frame sets reached the sinks; ``duration``: stop after this many seconds;
    ``handle_sigint``: the first Ctrl-C stops cleanly (main thread only).
    """

    out: str | Path | None = None
    max_frames: int | None = None
    duration: float | None = None
    handle_sigint: bool = True

    def __post_init__(self) -> None:
        check_limits(max_frames=self.max_frames, duration=self.duration)


def check_limits(*, max_frames: int | None, duration: float | None) -> None:
    """A ``DataError`` unless ``max_frames`` (when given) is at least 1 and ``duration`` positive, s."""
    if max_frames is not None and max_frames < 1:
        raise DataError(f"max_frames must be at least 1, got {max_frames}")
    if duration is not None and not duration > 0:
        raise DataError(f"duration must be a positive number of seconds, got {duration}")


@contextlib.contextmanager
def stop_on_sigint(event: threading.Event) -> Iterator[None]:
    """While inside, the first Ctrl-C sets ``event`` (a clean stop); a second one raises
    ``KeyboardInterrupt`` as usual. Does nothing outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def resolve_bundle(rig: Rig, bundle: Bundle | str | Path | None) -> Bundle:
    """``bundle`` if given, else the rig's ``[model] bundle`` (relative to the rig file)."""
    if isinstance(bundle, Bundle):
        return bundle
    if bundle is not None:
        return Bundle.open(bundle)
    if rig.model.bundle is None:
        raise BundleError("no bundle: give one (`vitdeploy run BUNDLE ...`) or set [model] bundle in the rig file")
    path = rig.model.bundle if rig.model.bundle.is_absolute() else rig.base_dir / rig.model.bundle
    return Bundle.open(path)


def run_rig(rig: Rig, *, bundle: Bundle | str | Path | None = None, options: RunOptions = RunOptions(),
            backend: Backend | None = None, model: nn.Module | None = None,
            sources: dict[str, Source] | None = None, stop_event: threading.Event | None = None,
            console: Console | None = None) -> RunSummary:
    """Run ``rig`` as ``options`` say and return what happened.

    Args:
        bundle: the bundle (or its folder); default the rig's ``[model] bundle``.
        backend: an open backend to use (not closed here, so a caller can reuse it); default one
            opened from the rig's ``[model]`` backend, precision and device, and closed at the end.
        model: the PyTorch model for the torch backend; default the bundle's
            (``vitdeploy.models.exported.exported_model``).
        sources: camera name -> a source to use instead of the one its URI names (tests, custom
            drivers); not started yet.
        stop_event: set it (from any thread) to stop cleanly.
        console: a rich console for the live view (shown when the rig's ``[outputs] live`` is on).
    """
    bundle = resolve_bundle(rig, bundle)
    manifest = bundle.manifest
    decode = _decoder(head_for(manifest), rig)
    if len(rig.cameras) > manifest.max_cameras:
        raise BackendError(f"the rig has {len(rig.cameras)} cameras, bundle {bundle.path} takes 1..{manifest.max_cameras}; "
                           f"re-export it with --max-cameras {len(rig.cameras)}")
    constant_inputs = rig_inputs(rig, manifest)  # a rig-level model's camera geometry, checked before anything opens
    cams = _open_sources(rig, sources, channel_order=_source_channel_order(manifest.preprocessing))
    out_dir = _output_dir(rig, options.out)
    stop = stop_event or threading.Event()
    interrupted = threading.Event()
    owned_backend = backend is None
    sinks: list[SinkThread] = []
    live: LiveView | None = None
    started = time.monotonic()
    pipeline: Pipeline | None = None
    try:
        if backend is None:
            if model is None and rig.model.backend == "torch":
                from vitdeploy.models.exported import exported_model

                model = exported_model(manifest)
            backend = open_backend(rig.model.backend, bundle, precision=rig.model.precision,
                                   device=rig.model.device, model=model, allow_rejected=rig.model.allow_rejected)
        sinks = _open_sinks(rig, out_dir, class_names=list(manifest.class_names))
        stats = Stats(cams, budget_ms=rig.latency_budget_ms)
        _decode_into_rows(manifest.preprocessing, backend, cams, sinks)
        sigint = stop_on_sigint(interrupted) if options.handle_sigint else contextlib.nullcontext()
        with sigint:
            epoch, startup_left = start_cameras(cams, timeout_s=rig.startup_timeout_s,
                                                stop=lambda: stop.is_set() or interrupted.is_set())
            # the first set waits for the rest of the start-up time, and no less than any other set
            sync = Synchronizer(cams, rate_hz=rig.rate_hz, tolerance_s=rig.sync_tolerance_ms / 1e3,
                                fallback_size=_fallback_size(manifest.preprocessing), epoch=epoch,
                                startup_timeout_s=max(startup_left, rig.sync_tolerance_ms / 1e3))
            pipeline = Pipeline(synchronizer=sync, backend=backend, decoder=decode,
                                preprocessing=manifest.preprocessing, sinks=sinks, stats=stats,
                                policy=QueuePolicy.BLOCK if rig.rate_hz <= 0 else QueuePolicy.DROP_OLDEST,
                                max_sets=options.max_frames, allow_resize=rig.model.allow_cpu_resize,
                                constant_inputs=constant_inputs)
            if console is not None and rig.outputs.live:
                live = LiveView(stats, dropped=lambda: sum(pipeline.dropped.values()), console=console)
            started = time.monotonic()
            pipeline.start()
            if live is not None:
                live.start()
            stopped_by = _wait(pipeline, stop=stop, interrupted=interrupted, options=options, started=started)
            pipeline.stop()
            pipeline.done.wait(STOP_TIMEOUT_S)
        backend_info = backend.describe()
    finally:
        if pipeline is not None:
            pipeline.stop()
            pipeline.join(STOP_TIMEOUT_S)
        stop_sources(cams, timeout=SOURCES_STOP_TIMEOUT_S)
        if live is not None:
            live.close()
        for sink in sinks:
            sink.close(timeout=STOP_TIMEOUT_S)
        if owned_backend and backend is not None:
            backend.close()
    failed_sink = next((s for s in sinks if s.error is not None), None)
    if pipeline.error is not None or failed_sink is not None:
        exc = pipeline.error if pipeline.error is not None else failed_sink.error
        stage = pipeline.error_stage if pipeline.error is not None else "sink"
        if sys.version_info >= (3, 11):  # notes show in tracebacks; Python 3.10 has none, the error is the same
            exc.add_note(f"(in the pipeline's {stage} stage)")
        raise exc
    files = [f for sink in sinks for f in sink.files()]
    allowed = bundle.rejected_variants(rig.model.precision) if rig.model.backend != "torch" else []
    return stats.summary(dropped=pipeline.dropped, sink_dropped={s.name: s.dropped for s in sinks},
                         skipped=sync.skipped, empty_ticks=sync.empty_ticks, stopped_by=stopped_by,
                         duration_s=time.monotonic() - started, zero_copy_sets=pipeline.zero_copy_sets,
                         jsonl=next((f for f in files if f.suffix == ".jsonl"), None),
                         videos=[f for f in files if f.suffix == ".mp4"], backend=backend_info, overrides=allowed,
                         mcap=next((f for f in files if f.suffix == ".mcap"), None))


def start_cameras(sources: list[Source], *, timeout_s: float, stop: Callable[[], bool]) -> tuple[float, float]:
    """Open every camera (in its own thread), waiting at most ``timeout_s`` seconds for all of them
    together, then start their shared clock (a rig of recordings: at the earliest first stamp of
    any of them). Returns the epoch (monotonic s) and the part of the
    start-up time left for the first frame set to wait in."""
    started = time.monotonic()
    deadline = started + timeout_s
    for source in sources:
        source.start(deferred=True)
    for source in sources:
        while not source.wait_opened(min(0.05, deadline - time.monotonic())):
            if time.monotonic() >= deadline or stop():
                break
    epoch = time.monotonic()
    # recordings: the earliest first stamp of the rig plays at the epoch, the rest as recorded after it
    firsts = [stamp for source in sources if (stamp := source.first_stamp_ns()) is not None]
    origin = min(firsts) if firsts else None
    for source in sources:
        source.set_epoch(epoch, origin_ns=origin)
    return epoch, max(0.0, deadline - epoch)


def stop_sources(sources: list[Source], *, timeout: float) -> None:
    """Stop every source at once and wait at most ``timeout`` seconds for all of them together."""
    for source in sources:
        source.request_stop()
    deadline = time.monotonic() + timeout
    for source in sources:
        source.join(deadline - time.monotonic())


def _decoder(head: Head, rig: Rig) -> DecodeFn:
    """The head's decoding with the rig's score threshold and top-k; a head `run` cannot decode is
    refused before anything is opened."""
    if not head.runnable:
        raise BundleError(f"`vitdeploy run` cannot decode {head.kind} heads ({head.why_not('run')})")
    return functools.partial(_decode, head, score_threshold=rig.model.score_threshold, top_k=rig.model.top_k)


def _decode(head: Head, outputs: dict, letterboxes: list, *, score_threshold: float, top_k: int) -> Decoded:
    return head.decode(outputs, letterboxes=letterboxes, score_threshold=score_threshold, top_k=top_k)


def _source_channel_order(preprocessing) -> str:
    """The channel order to ask the cameras for: a fused graph's source order (BGR: the decoders'
    frames go in as they come, with no conversion), else RGB."""
    return preprocessing.source_channel_order.upper() if preprocessing.fused else "RGB"


def _open_sources(rig: Rig, given: dict[str, Source] | None, *, channel_order: str = "RGB") -> list[Source]:
    """One source per camera, in rig order: the given one, or the one its URI names (asked for
    frames in ``channel_order`` where it can deliver them so)."""
    overrides = dict(given or {})
    unknown = sorted(set(overrides) - set(rig.camera_names))
    if unknown:
        raise DataError(f"sources given for cameras {unknown} that the rig does not have: {rig.camera_names}")
    paced = rig.rate_hz > 0  # a free-running rig takes frames as fast as the pipeline does
    threads = decoder_threads(rig.decoder_threads, len(rig.cameras))
    return [overrides.get(c.name) or open_source(c, paced=paced, base_dir=rig.base_dir, channel_order=channel_order,
                                                 threads=threads)
            for c in rig.cameras]


def _decode_into_rows(preprocessing, backend: Backend, sources: list[Source], sinks: list) -> CameraRows | None:
    """Reused camera batches the cameras decode straight into (``runtime.batches.CameraRows``),
    when that saves a copy: the graph takes raw uint8 frames (fused preprocessing), some camera
    decodes into a given array (video files), and no sink reads the frames after inference (a video
    or an MCAP with images needs them to outlive the batch). None otherwise."""
    if not preprocessing.fused or str(backend.inputs[0].dtype) != "uint8":
        return None
    if any(sink.reads_images for sink in sinks) or not any(s.decodes_into for s in sources):
        return None
    rows = CameraRows(len(sources), tuple(preprocessing.source_size))
    for index, source in enumerate(sources):
        source.use_rows(rows, index)
    return rows


def _open_sinks(rig: Rig, out_dir: Path, *, class_names: list[str]) -> list[SinkThread]:
    """The rig's sinks, each in its own thread: on a live rig a slow one drops its own sets."""
    sinks: list[SinkThread] = []
    drop = rig.rate_hz > 0
    try:
        if rig.outputs.jsonl:
            jsonl = JsonlSink(out_dir / rig.outputs.jsonl, class_names=class_names, budget_ms=rig.latency_budget_ms)
            sinks.append(SinkThread(jsonl, name="jsonl", drop=drop))
        if rig.outputs.video is not VideoMode.NONE:
            fps = rig.rate_hz if rig.rate_hz > 0 else max(c.fps for c in rig.cameras)
            video = VideoSink(out_dir, mosaic=rig.outputs.video is VideoMode.MOSAIC, fps=fps, class_names=class_names)
            sinks.append(SinkThread(video, name="video", drop=drop))
        if rig.outputs.mcap:
            from vitdeploy.runtime.mcap_sink import McapSink

            mcap = McapSink(out_dir / rig.outputs.mcap, class_names=class_names, budget_ms=rig.latency_budget_ms,
                            images=rig.outputs.mcap_images)
            sinks.append(SinkThread(mcap, name="mcap", drop=drop))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _wait(pipeline: Pipeline, *, stop: threading.Event, interrupted: threading.Event, options: RunOptions,
          started: float) -> str:
    """Wait until the run ends; returns why: interrupted, stop, duration, error, max-frames or
    sources finished."""
    while not pipeline.done.wait(0.05):
        if stop.is_set() or interrupted.is_set():
            return "interrupted" if interrupted.is_set() else "stop"
        if options.duration is not None and time.monotonic() - started >= options.duration:
            return "duration"
    if pipeline.error is not None:
        return "error"
    if options.max_frames is not None and pipeline.sets_out >= options.max_frames:
        return "max-frames"
    return "sources finished"


def _output_dir(rig: Rig, out: str | Path | None) -> Path:
    if out is not None:
        return Path(out)
    if rig.outputs.dir is not None:
        return rig.outputs.dir if rig.outputs.dir.is_absolute() else rig.base_dir / rig.outputs.dir
    if rig.outputs.jsonl or rig.outputs.video is not VideoMode.NONE or rig.outputs.mcap:
        raise DataError("no output folder: pass out=... (`--out DIR`) or set [outputs] dir in the rig file")
    return Path(".")


def _fallback_size(preprocessing) -> tuple[int, int]:
    """Size of the zero frame standing in for a camera that never delivered: a fused graph takes
    raw frames of one size only, so it must be the source size there."""
    if preprocessing.fused and preprocessing.source_size:
        return tuple(preprocessing.source_size)
    return tuple(preprocessing.image_size)

