"""What a recording holds: its topics with message types, counts, rates and time spans; and the
small contract (``Store``) the MCAP and ROS 2 bag readers both fulfil.

All times are integer nanoseconds of the recording's log time (when the recorder received each
message); ``info`` reads them from the file's indexes where it has them, so it is quick on large
drives. A frame's own capture stamp (its header) is read only when the frame is decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from vitdeploy.data.recordings.images import ImageMessageType
from vitdeploy.errors import DataError

#: message encodings whose image messages can be decoded (ROS 2 CDR, protobuf)
DECODABLE_ENCODINGS = ("cdr", "protobuf")


def readable_image_type(message_type: str, message_encoding: str) -> ImageMessageType | None:
    """The image type of a topic whose frames vitdeploy can read, else None."""
    kind = ImageMessageType.of(message_type)
    return kind if message_encoding in DECODABLE_ENCODINGS else None


@dataclass(frozen=True)
class TopicInfo:
    """One topic: its message type (``sensor_msgs/msg/CompressedImage``, ``foxglove.RawImage``, ...),
    message encoding (``cdr``, ``protobuf``, ``json``), how many messages, and the log times of
    the first and last (ns; 0 when there are none)."""

    topic: str
    message_type: str
    message_encoding: str
    count: int
    start_ns: int
    end_ns: int

    @property
    def image_type(self) -> ImageMessageType | None:
        """The image message type when vitdeploy can read this topic's frames, else None."""
        return readable_image_type(self.message_type, self.message_encoding)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def rate_hz(self) -> float:
        """Mean message rate (count - 1 intervals over the span); 0 with fewer than two messages."""
        return (self.count - 1) / self.duration_s if self.count > 1 and self.end_ns > self.start_ns else 0.0

    def to_dict(self) -> dict:
        return {"topic": self.topic, "type": self.message_type, "encoding": self.message_encoding,
                "count": self.count, "rate_hz": round(self.rate_hz, 3), "start_ns": self.start_ns,
                "end_ns": self.end_ns, "duration_s": round(self.duration_s, 6), "image": self.image_type is not None}


@dataclass(frozen=True)
class RecordingInfo:
    """A recording's format (``MCAP`` or ``ROS 2 bag``) and topics, sorted by name."""

    path: Path
    format: str
    topics: tuple[TopicInfo, ...]

    @property
    def image_topics(self) -> list[str]:
        """The topics whose frames vitdeploy reads."""
        return [t.topic for t in self.topics if t.image_type is not None]

    @property
    def start_ns(self) -> int:
        return min((t.start_ns for t in self.topics if t.count), default=0)

    @property
    def end_ns(self) -> int:
        return max((t.end_ns for t in self.topics if t.count), default=0)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def to_dict(self) -> dict:
        return {"path": str(self.path), "format": self.format, "start_ns": self.start_ns, "end_ns": self.end_ns,
                "duration_s": round(self.duration_s, 6), "messages": sum(t.count for t in self.topics),
                "image_topics": self.image_topics, "topics": [t.to_dict() for t in self.topics]}


@dataclass(frozen=True)
class RawMessage:
    """One message as read from the file, not decoded yet: its log time (ns) and a call that
    decodes it (raises ``CorruptFrameError`` or ``UnsupportedImageError``)."""

    log_time_ns: int
    message_type: str
    decode: Callable[[], object]


class Store(Protocol):
    """What a recording file format gives ``Recording``; ``McapStore`` and ``RosbagStore`` implement it."""

    path: Path
    format: str

    def topics(self) -> list[tuple[str, str, str]]:
        """(topic, message type, message encoding) for every topic, in name order."""

    def log_times(self) -> dict[str, np.ndarray]:
        """Every topic's message log times, (N,) int64 ns ascending."""

    def messages(self, topic: str, *, start_ns: int | None, end_ns: int | None) -> Iterator[RawMessage]:
        """The topic's messages with ``start_ns <= log time < end_ns``, in log-time order."""

    def close(self) -> None: ...


def unreadable(path: Path, what: str, exc: BaseException, *, fix: str) -> DataError:
    """The error for a file the reader library cannot parse: what it is, the library's words, what to do."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"{path} is not a readable {what} (truncated or corrupt: {detail}); {fix}")


T = TypeVar("T")


def guarded(items: Iterator[T], unreadable: Callable[[BaseException], DataError]) -> Iterator[T]:
    """``items`` from a reader library, with whatever it raises on a damaged file (its own errors,
    ``struct.error``, decompression errors ...) turned into ``unreadable(exc)``."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except Exception as exc:
            raise unreadable(exc) from exc
        yield item
