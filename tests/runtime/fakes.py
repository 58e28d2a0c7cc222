"""Fake camera sources for runtime tests: scripted frames, errors, stalls and corrupt frames."""

from __future__ import annotations

import cv2
import numpy as np

from vitdeploy.runtime.sources.base import Source

SIZE = (64, 96)


def frame(k: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.full((*size, 3), k % 256, np.uint8)


class ScriptedSource(Source):
    """Frame k (from 0) is ``script(k)``: an array, None (end of stream), or it raises."""

    def __init__(self, camera: str, script, *, fps: float = 20.0, open_failures: int = 0, **kwargs):
        super().__init__(camera, fps=fps, **kwargs)
        self.script = script
        self.open_failures = open_failures
        self.opens = 0
        self.k = 0

    def _open(self) -> None:
        self.opens += 1
        if self.opens <= self.open_failures:
            raise ConnectionError(f"no signal (attempt {self.opens})")

    def _read(self):
        k, self.k = self.k, self.k + 1
        return self.script(k)


class StallingSource(ScriptedSource):
    """Delivers ``good`` frames, then blocks in ``_read`` (a hung driver) until stopped."""

    def __init__(self, camera: str, *, good: int = 3, **kwargs):
        super().__init__(camera, frame, **kwargs)
        self.good = good

    def _read(self):
        if self.k >= self.good:
            self._stop.wait()
            return None
        return super()._read()


def good(k: int) -> np.ndarray:
    return frame(k)


def raises_after(n: int):
    def script(k: int):
        if k >= n:
            raise RuntimeError("sensor unplugged")
        return frame(k)
    return script


def corrupt_after(n: int):
    """Good frames, then alternately a 2-D frame and a float32 frame."""
    def script(k: int):
        if k < n:
            return frame(k)
        return np.zeros(SIZE, np.uint8) if k % 2 else frame(k).astype(np.float32)
    return script


def write_video(path, frames: int, size: tuple[int, int] = SIZE, fps: float = 20.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    for k in range(frames):
        writer.write(frame(40 * k, size))
    writer.release()
