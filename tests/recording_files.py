"""Recordings written in tests by the libraries people record with: ROS 2 messages into MCAP
(``mcap-ros2-support``), Foxglove protobuf messages into MCAP (``mcap-protobuf-support``), and
ROS 2 bags (``rosbags``, .db3 storage). Nothing here decodes; the readers under test do.

A stream is a list of ``Msg``: a frame's header stamp and log time (ns) and its pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
#: a present-day UNIX time (2026-01-01), so stamps look like a real drive's
T0 = 1_767_225_600_000_000_000


@dataclass(frozen=True)
class Msg:
    """One image message: ``pixels`` (H, W, C) or (H, W) as the encoding lays them out."""

    stamp_ns: int
    log_ns: int
    pixels: np.ndarray
    encoding: str = "rgb8"  # raw messages: the pixel encoding; compressed ones: "png" or "jpeg"


def frame(i: int, h: int = 24, w: int = 32, *, seed: int = 0) -> np.ndarray:
    """A distinct (H, W, 3) uint8 test frame per index: noise, so any pixel mix-up shows."""
    return np.random.default_rng(seed * 1000 + i).integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth_frame(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth frame (gradients) that survives JPEG with a small error."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 4 + i * 10) % 256, (y * 5) % 256, np.full_like(x, (40 * i) % 256)], -1).astype(np.uint8)


def stream(n: int, *, period_ns: int = 100_000_000, offset_ns: int = 0, log_delay_ns: int = 3_000_000,
           encoding: str = "png", seed: int = 0) -> list[Msg]:
    """``n`` frames every ``period_ns`` from ``T0 + offset_ns``, each logged ``log_delay_ns`` after its stamp."""
    return [Msg(T0 + offset_ns + k * period_ns, T0 + offset_ns + k * period_ns + log_delay_ns,
                frame(k, seed=seed), encoding) for k in range(n)]


def compress(pixels: np.ndarray, fmt: str) -> bytes:
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _step(msg: Msg) -> int:
    return msg.pixels.shape[1] * msg.pixels.itemsize * (msg.pixels.shape[2] if msg.pixels.ndim == 3 else 1)


# ---- ROS 2 messages in MCAP ---------------------------------------------------------------------

def _ros_dict(msg: Msg, msgtype: str) -> dict:
    sec, nanosec = divmod(msg.stamp_ns, 1_000_000_000)
    header = {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": "camera"}
    if msgtype == "sensor_msgs/msg/CompressedImage":
        return {"header": header, "format": msg.encoding, "data": compress(msg.pixels, msg.encoding)}
    h, w = msg.pixels.shape[:2]
    return {"header": header, "height": h, "width": w, "encoding": msg.encoding, "is_bigendian": 0,
            "step": _step(msg), "data": msg.pixels.tobytes()}


def write_ros2_mcap(path: Path, topics: dict[str, tuple[str, list[Msg]]], *, extra_topic: bool = True,
                    compress_chunks: bool = True) -> Path:
    """``topics``: topic -> (ROS 2 message type, messages). ``extra_topic`` adds a non-image
    ``std_msgs/msg/String`` topic, as real drives have; ``compress_chunks`` False stores payloads
    as they are (so a test can find and damage one)."""
    from mcap.writer import CompressionType
    from mcap_ros2.writer import Writer

    with open(path, "wb") as fh:
        writer = Writer(fh, compression=CompressionType.ZSTD if compress_chunks else CompressionType.NONE)
        schemas = {}
        for topic, (msgtype, msgs) in topics.items():
            if msgtype not in schemas:
                schemas[msgtype] = writer.register_msgdef(msgtype, TYPESTORE.generate_msgdef(msgtype, ros_version=2)[0])
            for msg in msgs:
                writer.write_message(topic, schemas[msgtype], _ros_dict(msg, msgtype), log_time=msg.log_ns,
                                     publish_time=msg.log_ns)
        if extra_topic:
            schema = writer.register_msgdef("std_msgs/msg/String", "string data")
            writer.write_message("/diagnostics", schema, {"data": "ok"}, log_time=T0, publish_time=T0)
        writer.finish()
    return path


# ---- Foxglove protobuf messages in MCAP --------------------------------------------------------

def foxglove_message(msg: Msg, kind: str):
    from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
    from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
    from google.protobuf.timestamp_pb2 import Timestamp

    seconds, nanos = divmod(msg.stamp_ns, 1_000_000_000)
    stamp = Timestamp(seconds=seconds, nanos=nanos)
    if kind == "foxglove.CompressedImage":
        return CompressedImage(timestamp=stamp, frame_id="camera", format=msg.encoding,
                               data=compress(msg.pixels, msg.encoding))
    h, w = msg.pixels.shape[:2]
    return RawImage(timestamp=stamp, frame_id="camera", width=w, height=h, encoding=msg.encoding, step=_step(msg),
                    data=msg.pixels.tobytes())


def write_foxglove_mcap(path: Path, topics: dict[str, tuple[str, list[Msg]]]) -> Path:
    """``topics``: topic -> ("foxglove.CompressedImage" or "foxglove.RawImage", messages)."""
    from mcap_protobuf.writer import Writer

    with open(path, "wb") as fh, Writer(fh) as writer:
        for topic, (kind, msgs) in topics.items():
            for msg in msgs:
                writer.write_message(topic, foxglove_message(msg, kind), log_time=msg.log_ns, publish_time=msg.log_ns)
    return path


# ---- ROS 2 bags (rosbags) -------------------------------------------------------------------------

def write_ros2_bag(path: Path, topics: dict[str, tuple[str, list[Msg]]], *, storage: str = "sqlite3") -> Path:
    """A ROS 2 bag folder at ``path``: metadata.yaml and one ``.db3`` (``storage="sqlite3"``) or
    ``.mcap`` (``storage="mcap"``) file; returns the folder."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    types = TYPESTORE.types
    with Writer(path, version=9, storage_plugin=StoragePlugin[storage.upper()]) as writer:
        for topic, (msgtype, msgs) in topics.items():
            conn = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            for msg in msgs:
                fields = _ros_dict(msg, msgtype)
                sec, nanosec = divmod(msg.stamp_ns, 1_000_000_000)
                header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                                      frame_id="camera")
                fields.update(header=header, data=np.frombuffer(fields["data"], np.uint8))
                writer.write(conn, msg.log_ns, TYPESTORE.serialize_cdr(types[msgtype](**fields), msgtype))
    return path
