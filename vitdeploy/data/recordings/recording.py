"""Opening a recording and reading one camera's frames from it, lazily, on the recording's clock.

>>> with open_recording("drives/0412.mcap") as rec:
...     rec.info().image_topics                     # ['/cam_front/image_raw/compressed', ...]
...     for frame in rec.frames("/cam_front/image_raw/compressed"):
...         frame.stamp_ns, frame.image             # header stamp (ns), (H, W, 3) uint8 RGB
...     rec.sample("/cam_front/image_raw/compressed", count=64)   # evenly over the drive

A frame's stamp is its message's header stamp (``sensor_msgs``) or ``timestamp`` (Foxglove), the
capture time in the recording's clock; a message that carries none falls back to its log time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitdeploy.data.recordings.images import (
    SUPPORTED_TYPES,
    ImageMessageType,
    UnsupportedImageError,
    message_image,
)
from vitdeploy.data.recordings.info import RawMessage, RecordingInfo, Store, TopicInfo, readable_image_type
from vitdeploy.errors import DataError


@dataclass(frozen=True)
class RecordedFrame:
    """One camera frame of a recording: ``image`` (H, W, 3) uint8 RGB; ``stamp_ns`` its capture
    time in the recording's clock (ns); ``log_time_ns`` when the recorder logged it; ``index`` its
    position among the topic's messages, from 0."""

    topic: str
    index: int
    stamp_ns: int
    log_time_ns: int
    image: np.ndarray = field(repr=False)

    @property
    def stamp(self) -> float:
        """``stamp_ns`` in seconds (float: about 0.2 us resolution for present-day UNIX times)."""
        return self.stamp_ns / 1e9


@dataclass(frozen=True)
class ImageMessage:
    """One image message, read but not decoded: ``decode()`` gives the ``RecordedFrame`` and raises
    ``CorruptFrameError`` for a damaged one (skip it and read on) or ``UnsupportedImageError`` for
    a type or encoding vitdeploy cannot read (the whole topic is alike)."""

    topic: str
    index: int
    log_time_ns: int
    kind: ImageMessageType
    raw: RawMessage = field(repr=False)

    def decode(self) -> RecordedFrame:
        stamp_ns, image = message_image(self.kind, self.raw.decode())
        return RecordedFrame(self.topic, self.index, stamp_ns if stamp_ns is not None else self.log_time_ns,
                             self.log_time_ns, image)


class Recording:
    """An open MCAP file or ROS 2 bag (``open_recording``); a context manager. Not thread-safe:
    give each camera thread its own ``Recording`` of the same file."""

    def __init__(self, store: Store):
        self._store = store
        self.path = store.path
        self._info: RecordingInfo | None = None

    @property
    def format(self) -> str:
        """``MCAP`` or ``ROS 2 bag``."""
        return self._store.format

    def info(self) -> RecordingInfo:
        """Topics with types, counts, log-time spans and rates (from the file's indexes where it has them)."""
        if self._info is None:
            times = self._store.log_times()
            topics = []
            for topic, message_type, encoding in self._store.topics():
                t = times.get(topic, np.empty(0, np.int64))
                topics.append(TopicInfo(topic, message_type, encoding, int(t.size),
                                        int(t[0]) if t.size else 0, int(t[-1]) if t.size else 0))
            self._info = RecordingInfo(self.path, self.format, tuple(topics))
        return self._info

    def image_type(self, topic: str) -> ImageMessageType:
        """The image message type of ``topic``; a clear ``DataError`` naming the image topics there
        are when it is missing or carries something else. Reads no message (cheap on any file)."""
        types = {name: (message_type, encoding) for name, message_type, encoding in self._store.topics()}
        images = [name for name, (message_type, encoding) in types.items() if readable_image_type(message_type, encoding)]
        there = f"its image topics are {', '.join(images)}" if images else f"it has no image topics ({SUPPORTED_TYPES})"
        if topic not in types:
            raise DataError(f"{self.path} has no topic {topic!r}; {there}")
        message_type, encoding = types[topic]
        if ImageMessageType.of(message_type) is None:
            raise UnsupportedImageError(f"topic {topic} of {self.path} carries {message_type or 'schemaless'} "
                                        f"messages, not images ({SUPPORTED_TYPES}); {there}")
        kind = readable_image_type(message_type, encoding)
        if kind is None:
            raise UnsupportedImageError(f"topic {topic} of {self.path} is {encoding}-encoded; vitdeploy reads image "
                                        "messages encoded as cdr (ROS 2) or protobuf (Foxglove)")
        return kind

    def messages(self, topic: str, *, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[ImageMessage]:
        """The image messages of ``topic`` logged in [``start_ns``, ``end_ns``) (ns, the whole topic
        by default), in log-time order, not yet decoded. The topic is checked now; iterating reads
        the file lazily."""
        kind = self.image_type(topic)
        first = 0 if start_ns is None else int(np.searchsorted(self._store.log_times()[topic], start_ns, "left"))
        raws = self._store.messages(topic, start_ns=start_ns, end_ns=end_ns)
        return (ImageMessage(topic, first + k, raw.log_time_ns, kind, raw) for k, raw in enumerate(raws))

    def frames(self, topic: str, *, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[RecordedFrame]:
        """``messages`` decoded: the frames of ``topic`` in log-time order; a damaged one raises."""
        return (message.decode() for message in self.messages(topic, start_ns=start_ns, end_ns=end_ns))

    def sample(self, topic: str, *, count: int) -> list[RecordedFrame]:
        """``count`` frames of ``topic`` spread evenly over the drive (first and last included; all
        of them when it has fewer). Only the chosen messages are read and decoded."""
        if count < 1:
            raise DataError(f"sample at least 1 frame, got count={count}")
        self.image_type(topic)
        size = self._store.log_times()[topic].size
        picks = np.unique(np.round(np.linspace(0, size - 1, min(count, size))).astype(int)) if size else []
        return [self.message_at(topic, int(index)).decode() for index in picks]

    def count(self, topic: str) -> int:
        """How many messages ``topic`` has (from the file's index; 0 for a topic it does not have)."""
        return int(self._store.log_times().get(topic, np.empty(0)).size)

    def message_at(self, topic: str, index: int) -> ImageMessage:
        """Message ``index`` (0-based, log-time order) of image topic ``topic``, not yet decoded;
        only it is read."""
        self.image_type(topic)
        times = self._store.log_times()[topic]
        if not 0 <= index < times.size:
            raise DataError(f"{self.path}: {topic} has {times.size} messages, there is no message {index}")
        t = int(times[index])
        # The index within messages logged at the same nanosecond (rare: two frames, one log time).
        same = int(index - np.searchsorted(times, t, "left"))
        for k, message in enumerate(self.messages(topic, start_ns=t, end_ns=t + 1)):
            if k == same:
                return message
        raise DataError(f"{self.path}: message {index} of {topic} is in the file's index but not in its data; "
                        "the file is inconsistent (`mcap recover` rewrites an MCAP file from its data)")

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_recording(path: str | Path) -> Recording:
    """Open ``path``: an ``.mcap`` file (ROS 2 or Foxglove/protobuf messages), a ROS 2 bag folder
    (``metadata.yaml`` with ``.db3`` or ``.mcap`` storage) or a bare ``.db3`` file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"recording {path} does not exist; give an .mcap file, a .db3 file or a ROS 2 bag folder")
    if path.is_dir():
        if not (path / "metadata.yaml").is_file():
            raise DataError(f"{path} is a folder without metadata.yaml, so not a ROS 2 bag; give the bag folder or "
                            "one .mcap or .db3 file in it")
        from vitdeploy.data.recordings.rosbag_store import RosbagStore

        return Recording(RosbagStore(path))
    suffix = path.suffix.lower()
    if suffix == ".mcap":
        from vitdeploy.data.recordings.mcap_store import McapStore

        return Recording(McapStore(path))
    if suffix == ".db3":
        from vitdeploy.data.recordings.rosbag_store import RosbagStore

        return Recording(RosbagStore(path))
    raise DataError(f"{path} is not a recording vitdeploy reads; give an .mcap file, a .db3 file or a ROS 2 bag folder")
