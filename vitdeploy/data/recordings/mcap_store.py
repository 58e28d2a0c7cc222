"""MCAP files, read with the ``mcap`` library; messages decoded by ``mcap-ros2-support`` (ROS 2
CDR with a ``ros2msg`` schema) and ``mcap-protobuf-support`` (protobuf, e.g. Foxglove's schemas,
decoded with the schema the file carries)."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vitdeploy.data.recordings import extra
from vitdeploy.data.recordings.images import CorruptFrameError, UnsupportedImageError
from vitdeploy.data.recordings.info import RawMessage, guarded, unreadable
from vitdeploy.errors import DataError


class McapStore:
    """One MCAP file. Files without a summary section (a recorder that never wrote one) are read
    by scanning; a file cut off before its footer is refused with the repair command."""

    format = "MCAP"

    def __init__(self, path: Path):
        reader_mod = extra.load("mcap.reader")
        self._factories = (extra.load("mcap_ros2.decoder").DecoderFactory(),
                           extra.load("mcap_protobuf.decoder").DecoderFactory())
        self.path = path
        try:
            self._fh = open(path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
        self._decoders: dict[int, object] = {}
        self._times: dict[str, np.ndarray] | None = None
        try:
            self._reader = reader_mod.SeekingReader(self._fh)
            summary = self._reader.get_summary()
            if summary is None:
                self._scan()
            else:
                self._channels, self._schemas = summary.channels, summary.schemas
            self._summary = summary
        except Exception as exc:  # the library raises McapError, struct.error, EOFError ... on a damaged file
            self._fh.close()
            if isinstance(exc, extra.load("mcap.exceptions").InvalidMagic):
                raise DataError(f"{path} is not an MCAP file (it does not start with the MCAP magic bytes); give an "
                                ".mcap file, a .db3 file or a ROS 2 bag folder") from exc
            raise self._unreadable(exc) from exc

    def _unreadable(self, exc: BaseException) -> DataError:
        return unreadable(self.path, "MCAP file", exc, fix=f"a recording cut off mid-write can be repaired with "
                          f"`mcap recover {self.path} -o repaired.mcap` (the mcap CLI)")

    def topics(self) -> list[tuple[str, str, str]]:
        seen: dict[str, tuple[str, str, str]] = {}
        for channel in self._channels.values():
            schema = self._schemas.get(channel.schema_id)
            seen.setdefault(channel.topic, (channel.topic, schema.name if schema else "", channel.message_encoding))
        return [seen[t] for t in sorted(seen)]

    def log_times(self) -> dict[str, np.ndarray]:
        if self._times is None:
            try:
                per_channel = self._indexed_times()
            except Exception as exc:
                raise self._unreadable(exc) from exc
            if per_channel is None:
                self._scan()
            else:
                self._times = self._by_topic(per_channel)
        return self._times

    def _indexed_times(self) -> dict[int, list[int]] | None:
        """Log times from the message index records that follow each chunk, so nothing is
        decompressed; None when the file has no such indexes."""
        from mcap.records import MessageIndex
        from mcap.stream_reader import StreamReader

        chunks = self._summary.chunk_indexes if self._summary is not None else []
        if not chunks or any(not c.message_index_offsets for c in chunks):
            return None
        per_channel: dict[int, list[int]] = defaultdict(list)
        for chunk in chunks:
            for channel_id, offset in chunk.message_index_offsets.items():
                self._fh.seek(offset)
                record = next(StreamReader(self._fh, skip_magic=True).records)
                if not isinstance(record, MessageIndex):
                    raise DataError(f"expected a message index at byte {offset}, found {type(record).__name__}")
                per_channel[channel_id].extend(t for t, _ in record.records)
        return per_channel

    def _scan(self) -> None:
        """Read every message once for channels, schemas and log times (files without indexes)."""
        channels, schemas, per_channel = {}, {}, defaultdict(list)
        for schema, channel, message in self._reader.iter_messages(log_time_order=False):
            channels[channel.id] = channel
            if schema is not None:
                schemas[schema.id] = schema
            per_channel[channel.id].append(message.log_time)
        self._channels, self._schemas = channels, schemas
        self._times = self._by_topic(per_channel)

    def _by_topic(self, per_channel: dict[int, list[int]]) -> dict[str, np.ndarray]:
        times: dict[str, list[int]] = {channel.topic: [] for channel in self._channels.values()}
        for channel_id, stamps in per_channel.items():
            times[self._channels[channel_id].topic].extend(stamps)
        return {topic: np.sort(np.asarray(t, dtype=np.int64)) for topic, t in times.items()}

    def messages(self, topic: str, *, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[RawMessage]:
        found = self._reader.iter_messages(topics=[topic], starting_at=start_ns, ending_before=end_ns)
        for schema, channel, message in guarded(found, self._unreadable):
            yield RawMessage(message.log_time, schema.name if schema else "",
                             functools.partial(self._decode, schema, channel, message.data))

    def _decode(self, schema, channel, data: bytes) -> object:
        decoder = self._decoders.get(channel.id)
        if decoder is None:
            decoder = self._decoders[channel.id] = self._decoder_for(schema, channel)
        try:
            return decoder(data)
        except Exception as exc:  # CDR or protobuf parse errors of one damaged message
            name = schema.name if schema else "schemaless"
            raise CorruptFrameError(f"a {name} message on {channel.topic} cannot be decoded: {exc}") from exc

    def _decoder_for(self, schema, channel):
        for factory in self._factories:
            try:
                decoder = factory.decoder_for(channel.message_encoding, schema)
            except Exception as exc:
                raise DataError(f"{self.path}: the {schema.name} schema of {channel.topic} cannot be parsed: "
                                f"{exc}") from exc
            if decoder is not None:
                return decoder
        what = f"{schema.name} ({schema.encoding} schema)" if schema else "schemaless"
        raise UnsupportedImageError(f"{channel.topic}: {what} messages in {channel.message_encoding!r} encoding cannot "
                                    "be decoded; vitdeploy reads ROS 2 (cdr, ros2msg schema) and protobuf messages")

    def close(self) -> None:
        self._fh.close()
