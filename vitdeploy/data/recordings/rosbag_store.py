"""ROS 2 bags, read with ``rosbags``: a bag folder (``metadata.yaml`` with ``.db3`` or ``.mcap``
storage files) or a single ``.db3`` file; messages deserialised with rosbags' typestore (CDR)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vitdeploy.data.recordings import extra
from vitdeploy.data.recordings.images import CorruptFrameError
from vitdeploy.data.recordings.info import RawMessage, guarded, unreadable
from vitdeploy.errors import DataError


class RosbagStore:
    """A ROS 2 bag. Log times come from one pass over the bag (the storage has no index file)."""

    format = "ROS 2 bag"

    def __init__(self, path: Path):
        rosbag2 = extra.load("rosbags.rosbag2")
        typesys = extra.load("rosbags.typesys")
        self.path = path
        try:
            self._reader = rosbag2.Reader(path)
            self._reader.open()
        except PermissionError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except Exception as exc:  # rosbags' ReaderError, SQLite (apsw) errors on a damaged .db3, bad metadata
            raise self._unreadable(exc) from exc
        # The message types every ROS 2 release ships (sensor_msgs among them); images need no others.
        self._typestore = typesys.get_typestore(typesys.Stores.LATEST)
        self._connections: dict[str, list] = {}
        for conn in self._reader.connections:
            self._connections.setdefault(conn.topic, []).append(conn)
        self._times: dict[str, np.ndarray] | None = None

    def _unreadable(self, exc: BaseException) -> DataError:
        db3 = next(self.path.glob("*.db3"), self.path) if self.path.is_dir() else self.path
        return unreadable(self.path, "ROS 2 bag", exc, fix=f"SQLite can salvage what is readable of a damaged .db3: "
                          f"`sqlite3 {db3} .recover | sqlite3 recovered.db3`")

    def topics(self) -> list[tuple[str, str, str]]:
        return [(topic, conns[0].msgtype, conns[0].ext.serialization_format)
                for topic, conns in sorted(self._connections.items())]

    def log_times(self) -> dict[str, np.ndarray]:
        if self._times is None:
            times: dict[str, list[int]] = {topic: [] for topic in self._connections}
            for conn, stamp, _ in guarded(self._reader.messages(), self._unreadable):
                times[conn.topic].append(stamp)
            self._times = {topic: np.sort(np.asarray(t, dtype=np.int64)) for topic, t in times.items()}
        return self._times

    def messages(self, topic: str, *, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[RawMessage]:
        found = self._reader.messages(connections=self._connections[topic], start=start_ns, stop=end_ns)
        for conn, stamp, data in guarded(found, self._unreadable):
            yield RawMessage(stamp, conn.msgtype, functools.partial(self._decode, conn, data))

    def _decode(self, conn, data: bytes) -> object:
        try:
            return self._typestore.deserialize_cdr(data, conn.msgtype)
        except Exception as exc:  # a truncated or damaged CDR payload
            raise CorruptFrameError(f"a {conn.msgtype} message on {conn.topic} cannot be decoded: {exc}") from exc

    def close(self) -> None:
        self._reader.close()
