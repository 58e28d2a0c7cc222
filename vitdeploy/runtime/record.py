"""``record_rig``: a rig's cameras into one MCAP file, to calibrate and evaluate on later.

Every frame each camera delivers is written to its own topic (``/<camera>/image``) as a
``foxglove.CompressedImage`` (JPEG by default; PNG) or ``foxglove.RawImage`` (raw RGB), stamped
with its capture time in the source's clock: UNIX time for live cameras, files and synthetic
cameras (a paced camera's trigger time, shared by the rig), the original stamp for a recording.
The cameras run as in `vitdeploy run` (their own threads, bounded start-up; a camera that fails
costs the others nothing). The file is written under a temporary name and renamed when closed;
Ctrl-C, a duration or a frame limit close it normally, so a recording stopped by hand is complete.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from vitdeploy.data.recordings import ImageFormat
from vitdeploy.errors import DataError
from vitdeploy.runtime.rig import Rig
from vitdeploy.runtime.run import (
    SOURCES_STOP_TIMEOUT_S,
    check_limits,
    start_cameras,
    stop_on_sigint,
    stop_sources,
)
from vitdeploy.runtime.sources import Source, SourceStatus, open_source


@dataclass(frozen=True)
class RecordOptions:
    """How a recording is made: ``image_format`` (JPEG, or lossless PNG / raw), ``jpeg_quality``
    1-100; it stops after ``duration`` seconds, after ``max_frames`` frames of every camera, at
    Ctrl-C (``handle_sigint``, main thread only) or when every camera ended."""

    image_format: ImageFormat = ImageFormat.JPEG
    jpeg_quality: int = 90
    duration: float | None = None
    max_frames: int | None = None
    handle_sigint: bool = True

    def __post_init__(self) -> None:
        check_limits(max_frames=self.max_frames, duration=self.duration)


@dataclass
class RecordSummary:
    """What was recorded: frames written per camera, frames a camera delivered that were not written
    (the writer fell behind a paced camera), each camera's status at the end, and why it stopped."""

    path: Path
    topics: dict[str, str]  # camera -> topic
    frames: dict[str, int]
    skipped: dict[str, int]
    cameras: list[SourceStatus] = field(default_factory=list)
    duration_s: float = 0.0
    stopped_by: str = ""
    size_bytes: int = 0


def record_rig(rig: Rig, *, out: str | Path, options: RecordOptions = RecordOptions(),
               sources: dict[str, Source] | None = None, stop_event: threading.Event | None = None) -> RecordSummary:
    """Record ``rig``'s cameras into the MCAP file ``out`` as ``options`` say. ``sources``: camera
    name -> a source to use instead of the one its URI names (not started); ``stop_event``: set it
    from any thread to stop."""
    from vitdeploy.data.recordings import RecordingWriter, image_topic

    out = Path(out)
    if out.suffix.lower() != ".mcap":
        raise DataError(f"record into a file ending in .mcap, got {out}")
    given = dict(sources or {})
    cams = [given.get(c.name) or open_source(c, paced=rig.rate_hz > 0, base_dir=rig.base_dir) for c in rig.cameras]
    topics = {s.camera: image_topic(s.camera) for s in cams}
    summary = RecordSummary(path=out, topics=topics, frames={s.camera: 0 for s in cams},
                            skipped={s.camera: 0 for s in cams})
    stop = stop_event or threading.Event()
    wake = threading.Condition()
    for source in cams:
        source.add_listener(wake)
    out.parent.mkdir(parents=True, exist_ok=True)
    sigint = stop_on_sigint(stop) if options.handle_sigint else contextlib.nullcontext()
    started = time.monotonic()
    try:
        with RecordingWriter(out, image_format=options.image_format, jpeg_quality=options.jpeg_quality) as writer, sigint:
            start_cameras(cams, timeout_s=rig.startup_timeout_s, stop=stop.is_set)
            started = time.monotonic()
            summary.stopped_by = _write_until_done(cams, writer, summary, wake=wake, stop=stop, options=options,
                                                   started=started)
    finally:
        stop_sources(cams, timeout=SOURCES_STOP_TIMEOUT_S)
    summary.duration_s = time.monotonic() - started
    summary.cameras = [s.status() for s in cams]
    summary.size_bytes = out.stat().st_size
    return summary


def _write_until_done(cams: list[Source], writer, summary: RecordSummary, *, wake: threading.Condition,
                      stop: threading.Event, options: RecordOptions, started: float) -> str:
    """Write every new frame of every camera until a stop condition; returns which one."""
    last = {s.camera: -1 for s in cams}
    while True:
        wrote = False
        for source in cams:
            if options.max_frames is not None and summary.frames[source.camera] >= options.max_frames:
                continue
            for frame in source.buffered():
                if frame.index <= last[source.camera]:
                    continue
                summary.skipped[source.camera] += frame.index - last[source.camera] - 1
                writer.write_image(summary.topics[source.camera], frame.image, stamp_ns=frame.stamp_ns,
                                   frame_id=source.camera)
                last[source.camera] = frame.index
                source.take(frame)  # an unpaced source reads its next frame now
                summary.frames[source.camera] += 1
                wrote = True
                if options.max_frames is not None and summary.frames[source.camera] >= options.max_frames:
                    break
        if stop.is_set():
            return "interrupted"
        done = {s.camera: s.health().finished and (s.newest() is None or s.newest().index <= last[s.camera])
                for s in cams}
        if all(done.values()):
            return "sources finished"
        if options.max_frames is not None and all(done[c] or n >= options.max_frames for c, n in summary.frames.items()):
            return "max-frames"
        if options.duration is not None and time.monotonic() - started >= options.duration:
            return "duration"
        if not wrote:
            with wake:
                wake.wait(0.05)
