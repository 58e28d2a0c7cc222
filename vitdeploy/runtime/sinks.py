"""Where frame-set results go: JSON Lines, annotated video, and a live terminal view.

Output is written as it comes: every JSONL line is flushed and fsynced after it is written, and
video writers are closed in a ``finally``, so a run stopped half-way (Ctrl-C) leaves only complete
lines and playable videos.
"""

from __future__ import annotations

import abc
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from vitdeploy.errors import DataError
from vitdeploy.heads import CameraResult, SetResult
from vitdeploy.heads.results import class_name
from vitdeploy.runtime.stats import Stats, set_latencies_ms
from vitdeploy.runtime.sync import CameraSlot, FrameSet

#: Widest mosaic video, pixels; tiles are scaled down to fit.
MOSAIC_MAX_WIDTH = 1920


class Sink(abc.ABC):
    """Receives every completed frame set, in order, on the pipeline's sink thread."""

    #: the sink reads the camera frames (``slot.image``): they must outlive inference
    reads_images: bool = False

    @abc.abstractmethod
    def write(self, fs: FrameSet) -> None: ...

    def close(self) -> None:  # noqa: B027 - sinks without resources need not override
        """Flush and release files."""

    def files(self) -> list[Path]:
        return []


# ---- JSON Lines -------------------------------------------------------------------------------

def camera_results(fs: FrameSet) -> list[CameraResult | None]:
    """The set's result per camera (None where there is none, and for every camera when a
    rig-level head answered for the whole set)."""
    if fs.results is None or isinstance(fs.results, SetResult):
        return [None] * len(fs.slots)
    return fs.results


#: How the JSONL's per-camera boxes are written: x1, y1, x2, y2 in the camera frame's pixels.
BOX_FORMAT = "xyxy_pixels"


def set_record(fs: FrameSet, *, class_names: list[str], budget_ms: float) -> dict:
    """One JSON object per frame set: per camera its capture time twice — ``capture`` (monotonic s,
    what latencies are measured with) and ``stamp_ns`` in the source's clock (``clock``:
    ``recording`` header stamp or ``wall`` UNIX time, ns) — frame index, health and results (boxes
    as ``box_format`` says); the set's ``stamp_ns`` (earliest camera stamp) and ``wall_time`` (the
    rig's UNIX time at assembly, s); the missing cameras, skew, stage timestamps (monotonic s) and
    latencies (ms), and whether the end-to-end latency missed the budget. A rig-level head's
    answer for the whole set is under ``results`` beside ``cameras``."""
    results = camera_results(fs)
    cameras = []
    for slot, result in zip(fs.slots, results, strict=True):
        cameras.append({
            "name": slot.camera,
            "missing": slot.missing,
            "health": slot.health.value,
            "frame": slot.frame_index,
            "capture": slot.capture_time,
            "stamp_ns": slot.stamp_ns,
            "clock": None if slot.clock is None else slot.clock.value,
            "results": [] if slot.missing or result is None else result.to_records(class_names),
        })
    latency = set_latencies_ms(fs)
    record = {
        "set": fs.index,
        "stamp_ns": fs.stamp_ns,
        "wall_time": fs.wall_time,
        "box_format": BOX_FORMAT,
        "cameras": cameras,
        "missing": fs.missing,
        "skew_ms": round(fs.skew_ms, 3),
        "timestamps": fs.stamps,
        "latency_ms": {k: round(v, 3) for k, v in latency.items()},
        "deadline_miss": latency.get("end_to_end", 0.0) > budget_ms,
    }
    if isinstance(fs.results, SetResult):
        record["results"] = fs.results.to_records(class_names)
    return record


class JsonlSink(Sink):
    """One line per frame set (``set_record``), flushed and fsynced as it is written."""

    def __init__(self, path: str | Path, *, class_names: list[str], budget_ms: float, fsync: bool = True):
        self.path = Path(path)
        self.class_names = class_names
        self.budget_ms = budget_ms
        self.fsync = fsync
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise DataError(f"cannot write {self.path}: {exc.strerror or exc}; choose a writable --out folder") from exc

    def write(self, fs: FrameSet) -> None:
        line = json.dumps(set_record(fs, class_names=self.class_names, budget_ms=self.budget_ms),
                          separators=(",", ":"))
        self._fh.write(line + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def files(self) -> list[Path]:
        return [self.path]


# ---- video ------------------------------------------------------------------------------------

def _color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct RGB colour per class."""
    hue = (class_id * 47) % 180
    hsv = np.uint8([[[hue, 200, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def annotate(slot: CameraSlot, result: CameraResult | None, *, class_names: list[str],
             size: tuple[int, int] | None = None) -> np.ndarray:
    """The slot's frame, resized to ``size`` (H, W) pixels if given, with masks, boxes, labels and
    the camera name drawn on; a missing camera is dimmed and marked. Returns (H, W, 3) uint8 RGB."""
    image = slot.rgb()
    dets = None if slot.missing or result is None else result.detections
    if dets is not None and dets.masks is not None and len(dets):
        image = image.copy()
        for mask, label in zip(dets.masks, dets.labels, strict=True):
            image[mask] = (0.5 * image[mask] + 0.5 * np.array(_color(int(label)))).astype(np.uint8)
    fh, fw = image.shape[:2]
    h, w = size or (fh, fw)
    canvas = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA) if (h, w) != (fh, fw) else image.copy()
    sx, sy = w / fw, h / fh
    font_scale = max(0.35, min(h, w) / 900)
    thick = max(1, round(min(h, w) / 400))
    if slot.missing:
        canvas = (canvas * 0.35).astype(np.uint8)
        cv2.putText(canvas, f"MISSING ({slot.health.value})", (8, h // 2), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale * 1.5, (255, 64, 64), thick + 1, cv2.LINE_AA)
    if dets is not None:
        for box, score, label in zip(dets.boxes, dets.scores, dets.labels, strict=True):
            x1, y1, x2, y2 = (int(round(v)) for v in (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))
            color = _color(int(label))
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thick)
            name = class_name(class_names, label)
            cv2.putText(canvas, f"{name} {score:.2f}", (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                        font_scale, color, thick, cv2.LINE_AA)
    if result is not None and result.classes and not slot.missing:
        name, p = result.classes[0]
        cv2.putText(canvas, f"{name} {p:.2f}", (8, h - 8), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 0),
                    thick, cv2.LINE_AA)
    cv2.putText(canvas, slot.camera, (8, int(20 * font_scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                (255, 255, 255), thick, cv2.LINE_AA)
    return canvas


class VideoSink(Sink):
    """Annotated mp4 (mp4v) video: one file per camera (``mosaic=False``) or all cameras tiled
    into one. Frame sizes are fixed by the first set; ``fps`` is the frame rate written."""

    reads_images = True

    def __init__(self, out_dir: str | Path, *, mosaic: bool, fps: float, class_names: list[str]):
        self.out_dir = Path(out_dir)
        self.mosaic = mosaic
        self.fps = fps if fps > 0 else 10.0
        self.class_names = class_names
        self._writers: dict[str, tuple[cv2.VideoWriter, tuple[int, int]]] = {}
        self._paths: list[Path] = []

    def _writer(self, key: str, size: tuple[int, int]) -> tuple[cv2.VideoWriter, tuple[int, int]]:
        if key not in self._writers:
            path = self.out_dir / f"{key}.mp4"
            self.out_dir.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (size[1], size[0]))
            if not writer.isOpened():
                raise DataError(f"OpenCV cannot write video {path} (mp4v); check the folder and the OpenCV build")
            self._writers[key] = (writer, size)
            self._paths.append(path)
        return self._writers[key]

    def write(self, fs: FrameSet) -> None:
        results = camera_results(fs)
        if not self.mosaic:
            for slot, result in zip(fs.slots, results, strict=True):
                writer, size = self._writer(f"video_{slot.camera}", slot.image.shape[:2])
                frame = annotate(slot, result, class_names=self.class_names, size=size)
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            return
        n = len(fs.slots)
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        if "mosaic" in self._writers:
            size = self._writers["mosaic"][1]
            th, tw = size[0] // rows, size[1] // cols
        else:
            th, tw = fs.slots[0].image.shape[:2]
            scale = min(1.0, MOSAIC_MAX_WIDTH / (cols * tw))
            th, tw = int(th * scale) // 2 * 2, int(tw * scale) // 2 * 2
        writer, size = self._writer("mosaic", (rows * th, cols * tw))
        canvas = np.zeros((size[0], size[1], 3), np.uint8)
        for i, (slot, result) in enumerate(zip(fs.slots, results, strict=True)):
            r, c = divmod(i, cols)
            canvas[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = annotate(slot, result, class_names=self.class_names,
                                                                        size=(th, tw))
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        for writer, _ in self._writers.values():
            writer.release()
        self._writers.clear()

    def files(self) -> list[Path]:
        return list(self._paths)


# ---- live view --------------------------------------------------------------------------------

class LiveView:
    """A terminal view (rich ``Live``) of sets/s, latency percentiles, drops and camera health,
    refreshed ``refresh_hz`` times a second from ``stats``; ``dropped`` returns drops so far."""

    def __init__(self, stats: Stats, *, dropped: Callable[[], int], console, refresh_hz: float = 4.0):
        from rich.live import Live

        self.stats = stats
        self.dropped = dropped
        self._live = Live(get_renderable=self._render, console=console, refresh_per_second=refresh_hz,
                          transient=True)

    def start(self) -> None:
        self._live.start()

    def close(self) -> None:
        self._live.stop()

    def _render(self):
        from rich.markup import escape
        from rich.table import Table

        snap = self.stats.snapshot()
        e2e = snap["e2e"]
        table = Table(title=(f"{snap['sets']} sets, {snap['fps']:.1f} sets/s, end-to-end p50 {e2e[50]:.1f} / "
                             f"p95 {e2e[95]:.1f} / p99 {e2e[99]:.1f} ms, {self.dropped()} dropped, "
                             f"{snap['misses']} over budget"),
                      title_justify="left")
        for col in ("camera", "health", "frames in", "in sets", "missing", "last error"):
            table.add_column(col)
        for source in self.stats.sources:
            st = source.status()
            color = {"ok": "green", "starting": "cyan", "stalled": "yellow", "reconnecting": "yellow"}.get(
                st.health.value, "red")
            table.add_row(source.camera, f"[{color}]{st.health.value}[/]", str(st.frames),
                          str(snap["present"][source.camera]), str(snap["missing"][source.camera]),
                          escape((st.last_error or "")[:60]))
        return table

