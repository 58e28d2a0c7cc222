"""OpenCV sources: video files, and live captures (device index, rtsp:// URL, GStreamer pipeline)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vitdeploy.data.frames import open_video, read_video_frame
from vitdeploy.errors import DataError
from vitdeploy.runtime.sources.base import Source


class VideoFileSource(Source):
    """A video file, decoded with OpenCV; ``loop`` starts it over at the end instead of ending."""

    def __init__(self, camera: str, path: str | Path, *, loop: bool = False, **kwargs):
        super().__init__(camera, **kwargs)
        self.path = Path(path)
        self.loop = loop
        self._cap: cv2.VideoCapture | None = None

    def describe(self) -> str:
        return f"video {self.path}" + (" (loop)" if self.loop else "")

    def _open(self) -> None:
        self._cap = open_video(self.path)

    def _read(self) -> np.ndarray | None:
        frame = read_video_frame(self._cap)
        if frame is None and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            frame = read_video_frame(self._cap)
        return frame

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class CaptureSource(Source):
    """A live OpenCV capture: ``target`` is a device index (int), a stream URL (rtsp://, http://)
    or a GStreamer pipeline string (ending in ``appsink``). A capture that stops delivering is
    reopened (``reconnect_interval_s``, ``reconnect_attempts``)."""

    live = True

    def __init__(self, camera: str, target: int | str, *, resolution: tuple[int, int] | None = None,
                 gstreamer: bool = False, **kwargs):
        super().__init__(camera, **kwargs)
        self.target = target
        self.resolution = resolution
        self.gstreamer = gstreamer
        self._cap: cv2.VideoCapture | None = None

    def describe(self) -> str:
        return f"capture {self.target}"

    def _open(self) -> None:
        api = cv2.CAP_GSTREAMER if self.gstreamer else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.target, api)
        if not cap.isOpened():
            cap.release()
            hint = " (is OpenCV built with GStreamer?)" if self.gstreamer else ""
            raise DataError(f"OpenCV cannot open capture {self.target!r}{hint}")
        if self.resolution is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.resolution[0])
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.resolution[1])
        self._cap = cap

    def _read(self) -> np.ndarray | None:
        ok, bgr = self._cap.read()
        if not ok:
            raise DataError(f"capture {self.target!r} delivered no frame")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
