"""A recording source: one image topic of an MCAP file or ROS 2 bag, on the recording's clock.

URI: ``PATH#TOPIC`` (``drives/0412.mcap#/cam_front/image_raw/compressed``, ``file:///abs/drive.mcap#/cam``,
a bag folder or ``.db3`` file the same way), or ``PATH`` alone for a recording with one image
topic; in a rig file the camera's ``topic`` field names it instead. Each camera opens its own
``Recording`` (readers are not thread-safe), so cameras of one drive read it in parallel.

Frames carry the message's header stamp (``Clock.RECORDING``). A damaged message is skipped and
counted as corrupt; a topic that is missing or not an image, or a file that cannot be read (cut off,
corrupt index), fails this camera only, with the reader's one-line reason as its last error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vitdeploy.errors import DataError
from vitdeploy.runtime.sources.base import Clock, FrameError, Source, StampedImage

#: suffixes that make a file path a recording (a folder is one when it holds ``metadata.yaml``)
RECORDING_SUFFIXES = (".mcap", ".db3")


def is_recording(path: Path) -> bool:
    """Whether ``path`` is an MCAP file, a .db3 file or a ROS 2 bag folder."""
    return path.suffix.lower() in RECORDING_SUFFIXES or (path.is_dir() and (path / "metadata.yaml").is_file())


def default_topic(recording) -> str:
    """The image topic of an open ``Recording`` that has exactly one; a ``DataError`` listing them otherwise."""
    topics = recording.info().image_topics
    path = recording.path
    if len(topics) != 1:
        there = ", ".join(topics) if topics else "none"
        raise DataError(f"{path} has {len(topics)} image topics ({there}); name one: {path}#TOPIC, or `topic = ...` "
                        "in the rig file")
    return topics[0]


def topic_names(topics: list[str]) -> list[str]:
    """Camera names for image topics: the path segments in which they differ, joined by ``_``
    (``/cam_front/image_raw/compressed`` and ``/cam_left/image_raw/compressed`` -> cam_front,
    cam_left); a single topic is named by its first segment."""
    parts = [[p for p in t.split("/") if p] or [t] for t in topics]
    if len(parts) == 1:
        return [parts[0][0]]
    lead = 0
    while all(len(p) > lead + 1 for p in parts) and len({p[lead] for p in parts}) == 1:
        lead += 1
    trail = 0
    while all(len(p) > lead + trail + 1 for p in parts) and len({p[-1 - trail] for p in parts}) == 1:
        trail += 1
    names = ["_".join(p[lead:len(p) - trail]) for p in parts]
    return names if len(set(names)) == len(names) else ["_".join(p) for p in parts]


def recording_topics(path: Path, topics: list[str] | None = None) -> list[str]:
    """``topics`` checked against the image topics of the recording at ``path`` (None: all of them)."""
    from vitdeploy.data.recordings import open_recording

    with open_recording(path) as rec:
        images = rec.info().image_topics
        if not images:
            raise DataError(f"{path} has no image topics vitdeploy reads; `vitdeploy data info {path}` lists its topics")
        for topic in topics or []:
            rec.image_type(topic)  # a clear error naming the image topics there are
    return list(topics) if topics else images


class RecordingSource(Source):
    """The frames of ``topic`` in recording ``path``, in log-time order, stamped with their header
    stamps. Unpaced (free-running rigs) it delivers each frame when the last was taken; paced it
    publishes them at the recorded rate (``Source`` docstring)."""

    clock = Clock.RECORDING

    def __init__(self, camera: str, path: str | Path, *, topic: str | None, **kwargs):
        """``topic`` None: the recording's only image topic."""
        super().__init__(camera, **kwargs)
        self.path = Path(path)
        self.topic = topic
        self._recording = None
        self._messages: Iterator | None = None
        self._first_stamp_ns: int | None = None
        self._peeked = None

    def describe(self) -> str:
        return f"recording {self.path}" + (f"#{self.topic}" if self.topic else "")

    def first_stamp_ns(self) -> int | None:
        return self._first_stamp_ns

    def _open(self) -> None:
        from vitdeploy.data.recordings import open_recording

        self._recording = open_recording(self.path)
        if self.topic is None:
            self.topic = default_topic(self._recording)
        self._messages = self._recording.messages(self.topic)  # checks the topic now
        # The first frame's stamp starts the rig's clock (``start_cameras``): read it before then.
        for message in self._messages:
            try:
                self._peeked = self._decode(message)
            except FrameError as exc:
                self._count_corrupt(str(exc))
                continue
            self._first_stamp_ns = self._peeked.stamp_ns
            break

    def _read(self) -> StampedImage | None:
        if self._peeked is not None:
            frame, self._peeked = self._peeked, None
            return frame
        message = next(self._messages, None)
        return None if message is None else self._decode(message)

    @staticmethod
    def _decode(message) -> StampedImage:
        from vitdeploy.data.recordings import CorruptFrameError

        try:
            frame = message.decode()
        except CorruptFrameError as exc:
            raise FrameError(str(exc)) from exc
        return StampedImage(frame.image, frame.stamp_ns)

    def _close(self) -> None:
        self._messages = None
        if self._recording is not None:
            self._recording.close()
            self._recording = None
