"""A recording as a free-running rig: the rig `vitdeploy run` runs it with, and the sources replay
makes itself (a COCO set's images, with their labels).

Replay rigs run free-running (``rate_hz = 0``: no frame is skipped). An MCAP file or ROS 2 bag
has one camera per image topic and is synchronised by its recorded stamps (the runtime's sync of
recordings; ``RECORDED_SYNC_TOLERANCE_MS``). Videos and image folders have a sync tolerance of
``SYNC_TOLERANCE_MS``. File sources deliver the next frame once the last was taken, stamped with
the moment it arrived, so the tolerance is a wait, not a statement about the recording's clock:
a long one makes every set frame k of every camera (lock-step), whatever the speed at which each
file decodes on a loaded worker, and so the same sets on one machine or a thousand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitdeploy.bundle import Manifest
from vitdeploy.errors import DataError
from vitdeploy.extras import Extra, require
from vitdeploy.heads import Detections
from vitdeploy.replay.recordings import DEFAULT_FPS, Recording, RecordingKind
from vitdeploy.runtime.rig import Camera, ModelConfig, Outputs, Rig, VideoMode
from vitdeploy.runtime.sources import Source
from vitdeploy.runtime.sources.base import FrameError

#: How long a set waits for a camera's next frame, ms (see the module docstring).
SYNC_TOLERANCE_MS = 10_000.0
#: Recordings (MCAP, bags) are synchronised by their recorded stamps (the runtime's free-running
#: sync of recordings: every frame in exactly one set): frames this far apart in recorded time, ms,
#: are one set, as on a live rig.
RECORDED_SYNC_TOLERANCE_MS = 50.0
#: How long the first set waits for every camera to open, s.
STARTUP_TIMEOUT_S = 30.0
#: The latency budget of replay rigs, ms: offline, it only counts deadline misses in the JSONL.
LATENCY_BUDGET_MS = 100.0


def recording_rig(recording: Recording, *, model: ModelConfig, jsonl: str) -> Rig:
    """The free-running rig that replays ``recording`` with ``model`` (backend, precision, score
    threshold) into the JSONL file ``jsonl`` (a name in the run's output folder)."""
    tolerance_ms = SYNC_TOLERANCE_MS
    if recording.kind is RecordingKind.RECORDING:
        cameras = _topic_cameras(recording.path)
        tolerance_ms = RECORDED_SYNC_TOLERANCE_MS
    else:
        cameras = tuple(Camera(name=c.name, source=c.source, fps=DEFAULT_FPS) for c in recording.cameras)
    return Rig(cameras=cameras, model=model, rate_hz=0.0, sync_tolerance_ms=tolerance_ms,
               latency_budget_ms=LATENCY_BUDGET_MS, startup_timeout_s=STARTUP_TIMEOUT_S,
               outputs=Outputs(dir=None, jsonl=jsonl, video=VideoMode.NONE, live=False))


def _topic_cameras(path: Path) -> tuple[Camera, ...]:
    """One camera per image topic of an MCAP file or ROS 2 bag, named as `vitdeploy run --camera`
    names them (read here, on the worker: an unreadable file fails this recording only)."""
    require(Extra.RECORDINGS, needed_by=f"replaying {path}")
    from vitdeploy.runtime.sources.recording import recording_topics, topic_names

    topics = recording_topics(path)
    return tuple(Camera(name=n, source=f"{path}#{t}", fps=DEFAULT_FPS)
                 for n, t in zip(topic_names(topics), topics, strict=True))


def rig_toml(rig: Rig, *, bundle: Path) -> str:
    """``rig`` as a rig file: `vitdeploy run BUNDLE --rig rig.toml` replays the recording in one
    process, exactly as replay did."""
    m = rig.model
    lines = [f"rate_hz = {rig.rate_hz!r}", f"sync_tolerance_ms = {rig.sync_tolerance_ms!r}",
             f"latency_budget_ms = {rig.latency_budget_ms!r}", f"startup_timeout_s = {rig.startup_timeout_s!r}", "",
             "[model]", f"bundle = {_quote(str(bundle))}", f"backend = {_quote(m.backend)}",
             f"precision = {_quote(m.precision.value)}", f"score_threshold = {m.score_threshold!r}",
             f"top_k = {m.top_k}", f"allow_rejected = {str(m.allow_rejected).lower()}"]
    if m.device:
        lines.append(f"device = {_quote(m.device)}")
    lines += ["", "[outputs]", f"jsonl = {_quote(rig.outputs.jsonl or '')}", 'video = "none"', ""]
    for c in rig.cameras:
        lines += ["[[cameras]]", f"name = {_quote(c.name)}", f"source = {_quote(c.source)}", f"fps = {c.fps!r}", ""]
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class GroundTruth:
    """The labels of the frames a labelled source delivered, in delivery order: boxes x1 y1 x2 y2
    frame pixels, labels as the model's class indices; ``reason`` says why there are none."""

    frames: list[Detections] = field(default_factory=list)
    reason: str = ""


class LabelledImageSource(Source):
    """The images of a COCO set in the file's order, one camera; records the labels of every image
    it delivers in ``truth`` (frame k of the run is ``truth.frames[k]``)."""

    def __init__(self, camera: str, path: Path, *, class_names: tuple[str, ...], **kwargs):
        super().__init__(camera, **kwargs)
        from vitdeploy.evaluation.datasets import class_mapping, coco_dataset

        self.path = path
        self.dataset = coco_dataset(path)
        self.truth = GroundTruth()
        try:
            self._class_map: np.ndarray | None = class_mapping(self.dataset, class_names)
        except DataError as exc:
            self._class_map = None
            self.truth.reason = str(exc)
        self._images = None

    def describe(self) -> str:
        return f"COCO set {self.path}"

    def _open(self) -> None:
        self._images = self.dataset.images()

    def _read(self) -> np.ndarray | None:
        try:
            item = next(self._images)
        except StopIteration:
            return None
        except DataError as exc:  # one image unreadable or of the wrong size: skipped, counted
            raise FrameError(str(exc)) from exc
        if self._class_map is not None:
            self.truth.frames.append(Detections(item.boxes, np.ones(len(item.labels), np.float32),
                                                self._class_map[item.labels]))
        return item.image


def recording_sources(recording: Recording, *, manifest: Manifest) -> tuple[dict[str, Source] | None,
                                                                              GroundTruth | None]:
    """The sources replay gives `run_rig` for ``recording`` (None: the rig's URIs) and where the
    ground truth of the delivered frames will be (None: the recording has no labels)."""
    if recording.kind is not RecordingKind.COCO:
        return None, None
    camera = recording.cameras[0].name
    source = LabelledImageSource(camera, recording.path, class_names=tuple(manifest.class_names), fps=DEFAULT_FPS,
                                 paced=False)
    return {camera: source}, source.truth
