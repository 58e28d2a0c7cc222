"""OpenCV sources: video files, and live captures (device index, rtsp:// URL, GStreamer pipeline)
in a child process each."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from vitdeploy.data.frames import open_video
from vitdeploy.errors import DataError
from vitdeploy.runtime.sources.base import Source
from vitdeploy.runtime.sources.capture_process import CaptureProcess, CaptureSpec


class VideoFileSource(Source):
    """A video file, decoded with OpenCV (in FFmpeg's threads, the GIL released); ``loop`` starts
    it over at the end instead of ending. BGR frames are the decoder's own, with no conversion;
    given a row (``out``), the decoder writes the frame straight into it."""

    channel_orders = ("RGB", "BGR")
    decodes_into = True

    def __init__(self, camera: str, path: str | Path, *, loop: bool = False, threads: int | None = None, **kwargs):
        super().__init__(camera, **kwargs)
        self.path = Path(path)
        self.loop = loop
        self.threads = threads  # the decoder's threads (None: OpenCV's choice)
        self._cap: cv2.VideoCapture | None = None

    def describe(self) -> str:
        return f"video {self.path}" + (" (loop)" if self.loop else "")

    def _open(self) -> None:
        self._cap = open_video(self.path, threads=self.threads)

    def _read(self, out: np.ndarray | None = None) -> np.ndarray | None:
        """The next frame; decoded into ``out`` (H, W, 3) uint8 where it has the frame's size."""
        bgr_out = out if self.channel_order == "BGR" else None  # RGB: converted into ``out`` below
        frame = self._next_bgr(bgr_out)
        if frame is None and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            frame = self._next_bgr(bgr_out)
        if frame is None or self.channel_order == "BGR":
            return frame
        if out is not None and out.shape == frame.shape:
            return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=out)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def _next_bgr(self, out: np.ndarray | None = None) -> np.ndarray | None:
        # OpenCV writes into ``out`` when the frame has its size and type, else returns a new array
        ok, bgr = self._cap.read() if out is None else self._cap.read(out)
        return bgr if ok else None

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class CaptureSource(Source):
    """A live OpenCV capture: ``target`` is a device index (int), a stream URL (rtsp://, http://)
    or a GStreamer pipeline string (ending in ``appsink``). It runs in a child process
    (``capture_process``), so a stream or driver that hangs costs the rig nothing and stops at
    once. Opening, and each frame, may take at most ``timeout_s`` seconds; a capture that fails or
    stops delivering is reopened (``reconnect_interval_s``, ``reconnect_attempts``)."""

    live = True
    channel_orders = ("RGB", "BGR")
    decodes_into = True  # the frame is read from the child's pipe straight into the row

    def __init__(self, camera: str, target: int | str, *, resolution: tuple[int, int] | None = None,
                 gstreamer: bool = False, timeout_s: float = 5.0, threads: int | None = None, **kwargs):
        super().__init__(camera, **kwargs)
        self.spec = CaptureSpec(target=target, gstreamer=gstreamer, resolution=resolution, timeout_s=timeout_s,
                                channel_order=self.channel_order, threads=threads)
        self._lock = threading.Lock()
        self._process: CaptureProcess | None = None

    @property
    def target(self) -> int | str:
        return self.spec.target

    def describe(self) -> str:
        return f"capture {self.spec.target}"

    def _open(self) -> None:
        with self._lock:
            if self._stop.is_set():
                raise DataError("stopping")
            self._process = CaptureProcess(self.spec)
        self._process.wait_opened()

    def _read(self, out: np.ndarray | None = None) -> np.ndarray | None:
        return self._process.read(out)

    def _close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            process.close()

    def _interrupt(self) -> None:
        with self._lock:
            if self._process is not None:
                self._process.kill()
