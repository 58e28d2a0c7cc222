"""What a camera source hands on: frames, their clock and health, and a source's status."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitdeploy.errors import DataError


class Health(str, enum.Enum):
    STARTING = "starting"
    OK = "ok"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """The source will deliver no more frames."""
        return self in (Health.ENDED, Health.FAILED)


class Clock(str, enum.Enum):
    """Which clock a frame's ``stamp_ns`` is in."""

    WALL = "wall"  # UNIX time of the capture (live cameras, files, synthetic cameras)
    RECORDING = "recording"  # the recording's header stamp


@dataclass(frozen=True)
class StampedImage:
    """What a recording source's ``_read`` returns: ``image`` captured at ``stamp_ns`` (its clock, ns)."""

    image: np.ndarray
    stamp_ns: int


class FrameError(DataError):
    """One unreadable frame; the source skips it, counts it as corrupt and reads on."""


@dataclass(frozen=True)
class Frame:
    """One camera frame: ``image`` (H, W, 3) uint8 in its source's ``channel_order`` (RGB unless
    the rig asked for BGR), captured at ``capture_time`` seconds (``time.monotonic``: when a live
    frame arrived, or a paced frame's due time). ``index`` counts the frames this source
    delivered, from 0. ``stamp_ns`` is the capture time in the source's clock (ns; ``clock`` says
    which: a recording's stamp or UNIX wall time)."""

    camera: str
    index: int
    image: np.ndarray
    capture_time: float
    stamp_ns: int = 0
    clock: Clock = Clock.WALL
    hold: Any = None  # the source's hold on the batch row ``image`` lives in (``runtime.batches.RowHold``), if any


@dataclass(frozen=True)
class SourceStatus:
    """A snapshot of a source for reports: frames delivered, frames skipped as corrupt, reopenings."""

    camera: str
    health: Health
    frames: int
    corrupt: int
    reconnects: int
    last_error: str | None
    last_frame_age_s: float | None


def let_go(frame: Frame) -> None:
    """``frame`` left the source's buffer: the source's hold on its row goes back."""
    if frame.hold is not None:
        frame.hold.release()


def is_view_of(image: np.ndarray, row: np.ndarray) -> bool:
    """``image`` is ``row`` itself (decoded in place), not an array the decoder made instead."""
    return image.shape == row.shape and image.__array_interface__["data"][0] == row.__array_interface__["data"][0]


def check_frame(image: object) -> str | None:
    """Why ``image`` is not an (H, W, 3) uint8 frame, or None when it is."""
    if not isinstance(image, np.ndarray):
        return f"expected a numpy array, got {type(image).__name__}"
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        return f"expected shape (H, W, 3), got {image.shape}"
    if image.dtype != np.uint8:
        return f"expected dtype uint8, got {image.dtype}"
    return None
