"""Calibration frames from a recording: an MCAP file, a ``.db3`` file or a ROS 2 bag folder.

``--data drive.mcap`` takes every image topic, ``drive.mcap#/cam_front/image_raw,/cam_rear/image_raw``
(or `calibrate --topics`) the ones named. The frames asked for are spread over the topics in turn
and, within each topic, evenly over the drive (first and last message included), so a long drive
contributes its whole length, not its first minute. Only the chosen messages are read and decoded,
through the same JPEG/PNG/raw decoding `vitdeploy run` uses; a damaged message is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from vitdeploy.calibration.data import DataKind, _FrameSource
from vitdeploy.errors import DataError


def split_recording(source: str) -> tuple[Path, list[str] | None] | None:
    """(path, topics or None for all) when ``source`` names a recording (``PATH`` or
    ``PATH#TOPIC[,TOPIC...]``), else None."""
    from vitdeploy.runtime.sources.recording import is_recording

    text, _, topics = source.partition("#")
    path = Path(text).expanduser()
    if not is_recording(path):
        return None
    return path, [t for t in topics.split(",") if t] or None


class RecordingFrames(_FrameSource):
    """The image messages of ``topics`` in the recording at ``path``; index i is message
    ``i - offset(topic)`` of the topic whose range holds it. ``strata`` are the topics."""

    kind = DataKind.RECORDING

    def __init__(self, path: Path, topics: list[str] | None):
        from vitdeploy.data.recordings import open_recording
        from vitdeploy.runtime.sources.recording import recording_topics

        self.path = path
        self.topics = recording_topics(path, topics)
        self._recording = open_recording(path)
        self.counts = [self._recording.count(t) for t in self.topics]
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(int)
        self.skipped = 0

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def strata(self) -> list[list[int]]:
        return [list(range(self.offsets[i], self.offsets[i + 1])) for i in range(len(self.topics))]

    def pick(self, count: int, rng: np.random.Generator) -> list[int]:
        """``count`` indices evenly over the drive (``even``); which are held out is a seeded choice."""
        chosen = self.even(count)
        return [chosen[i] for i in rng.permutation(len(chosen))]

    def even(self, count: int) -> list[int]:
        """``count`` indices: a share per topic (topics in turn), evenly over each topic's drive."""
        shares = [count // len(self.topics) + (i < count % len(self.topics)) for i in range(len(self.topics))]
        picks: list[int] = []
        for i, (share, n) in enumerate(zip(shares, self.counts, strict=True)):
            if share and n:
                local = np.unique(np.round(np.linspace(0, n - 1, min(share, n))).astype(int))
                picks += [int(self.offsets[i] + k) for k in local]
        return picks

    def read(self, indices: Sequence[int]) -> Iterator[np.ndarray]:
        from vitdeploy.data.recordings import CorruptFrameError

        for index in indices:
            topic = int(np.searchsorted(self.offsets, index, "right") - 1)
            try:
                yield self._recording.message_at(self.topics[topic], int(index - self.offsets[topic])).decode().image
            except CorruptFrameError:
                self.skipped += 1  # a damaged message: calibrate on the others

    def close(self) -> None:
        self._recording.close()


def open_recording_frames(source: str) -> RecordingFrames | None:
    """The frames of the recording ``source`` names, or None when it names no recording."""
    found = split_recording(source)
    if found is None:
        return None
    path, topics = found
    if not path.exists():
        raise DataError(f"recording {path} does not exist; give an .mcap file, a .db3 file or a ROS 2 bag folder")
    return RecordingFrames(path, topics)
