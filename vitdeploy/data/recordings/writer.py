"""Writing MCAP files Foxglove opens: camera frames, 2D boxes on them, 3D boxes in the ego frame,
and a per-frame-set status message, all stamped with the recording's time.

======================================  =============================  ===========================
what                                    message                        default topic
======================================  =============================  ===========================
a camera's frames                       ``foxglove.CompressedImage``   ``/<camera>/image``
                                        (JPEG, PNG) or ``RawImage``
boxes on a camera's image (pixels)      ``foxglove.ImageAnnotations``  ``/<camera>/annotations``
3D boxes of a rig-level head (metres)   ``foxglove.SceneUpdate``       ``/vitdeploy/boxes_3d``
per frame set: latency, missing, miss   JSON (``vitdeploy.SetStatus``)  ``/vitdeploy/status``
======================================  =============================  ===========================

Every message's log time is its stamp, so Foxglove plays the file on the recording's clock and an
image's annotations (same stamp) line up with it. The file is written under a temporary name and
renamed when closed: an interrupted writer leaves nothing half-written; Ctrl-C inside ``with``
still closes a complete file (a recording stopped by hand is a recording).
"""

from __future__ import annotations

import colorsys
import enum
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from vitdeploy.bundle.files import atomic_path
from vitdeploy.data.recordings import extra
from vitdeploy.data.recordings.images import encode_compressed
from vitdeploy.errors import DataError

STATUS_TOPIC = "/vitdeploy/status"
BOXES_3D_TOPIC = "/vitdeploy/boxes_3d"


def image_topic(camera: str) -> str:
    """The topic a camera's frames are written to."""
    return f"/{camera}/image"


def annotations_topic(camera: str) -> str:
    """The topic a camera's 2D boxes are written to (Foxglove's Image panel shows them over the image)."""
    return f"/{camera}/annotations"


class ImageFormat(str, enum.Enum):
    """How frames are stored: JPEG (small, lossy), PNG (lossless, compressed) or raw RGB (lossless)."""

    JPEG = "jpeg"
    PNG = "png"
    RAW = "raw"


@dataclass(frozen=True)
class Box3D:
    """A 3D box in the writer's ``frame_id`` (the ego frame): ``center`` (x, y, z) and ``size``
    (length along x, width along y, height along z) in metres, ``yaw`` about z in radians."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float
    label: str
    score: float
    class_id: int = 0


@dataclass(frozen=True)
class SetStatus:
    """How one frame set went: latency per stage (ms), the cameras missing from it, whether the
    end-to-end latency missed the budget, and the spread of its capture stamps (ms)."""

    set_index: int
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    deadline_miss: bool = False
    skew_ms: float = 0.0

    def to_json(self, stamp_ns: int) -> dict:
        return {"timestamp": {"sec": stamp_ns // 1_000_000_000, "nsec": stamp_ns % 1_000_000_000},
                "set": self.set_index, "latency_ms": {k: float(v) for k, v in self.latency_ms.items()},
                "missing": list(self.missing), "deadline_miss": bool(self.deadline_miss),
                "skew_ms": float(self.skew_ms)}


#: JSON Schema of ``SetStatus`` messages (``timestamp`` in Foxglove's {sec, nsec} form, so it plots)
STATUS_SCHEMA = {
    "title": "vitdeploy.SetStatus",
    "type": "object",
    "properties": {
        "timestamp": {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}},
        "set": {"type": "integer"},
        "latency_ms": {"type": "object", "additionalProperties": {"type": "number"}},
        "missing": {"type": "array", "items": {"type": "string"}},
        "deadline_miss": {"type": "boolean"},
        "skew_ms": {"type": "number"},
    },
}


class RecordingWriter:
    """An MCAP file being written (zstd chunks); a context manager, or call ``close``/``abort``.
    Safe to call from several threads (one lock around each message)."""

    def __init__(self, path: str | Path, *, image_format: ImageFormat = ImageFormat.JPEG, jpeg_quality: int = 90):
        mcap_writer = extra.load("mcap.writer")
        self._register = extra.load("mcap_protobuf.schema").register_schema
        self._fox = _foxglove_types()
        if not 1 <= jpeg_quality <= 100:
            raise DataError(f"jpeg_quality must be 1-100, got {jpeg_quality}")
        self.path = Path(path)
        self.image_format = ImageFormat(image_format)
        self.jpeg_quality = jpeg_quality
        self.messages = 0
        self._lock = threading.Lock()
        self._channels: dict[str, tuple[int, str]] = {}  # topic -> (channel id, schema name)
        self._schemas: dict[str, int] = {}
        self._sequence: dict[int, int] = {}
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        try:
            self._fh = open(tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
            self._writer = mcap_writer.Writer(self._fh, compression=mcap_writer.CompressionType.ZSTD)
            self._writer.start(library="vitdeploy")
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._open = True

    # ---- messages -----------------------------------------------------------------------------
    def write_image(self, topic: str, image: np.ndarray, *, stamp_ns: int, frame_id: str = "") -> None:
        """One frame, (H, W, 3) uint8 RGB, captured at ``stamp_ns`` (ns, the recording's clock)."""
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            raise DataError(f"{topic}: a frame must be an (H, W, 3) uint8 RGB array, got "
                            f"{getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}")
        stamp = self._timestamp(stamp_ns)
        if self.image_format is ImageFormat.RAW:
            h, w = image.shape[:2]
            msg = self._fox.RawImage(timestamp=stamp, frame_id=frame_id, width=w, height=h,
                                                  encoding="rgb8", step=w * 3, data=np.ascontiguousarray(image).tobytes())
        else:
            data = encode_compressed(image, fmt=self.image_format.value, jpeg_quality=self.jpeg_quality)
            msg = self._fox.CompressedImage(timestamp=stamp, frame_id=frame_id, data=data,
                                                                format=self.image_format.value)
        self._write_proto(topic, msg, stamp_ns)

    def write_annotations(self, topic: str, *, stamp_ns: int, boxes: np.ndarray, scores: np.ndarray,
                          labels: np.ndarray, class_names: Sequence[str]) -> None:
        """Boxes on one camera's image: ``boxes`` (N, 4) x1, y1, x2, y2 in the image's pixels,
        ``scores`` (N,), ``labels`` (N,) class ids named by ``class_names``. Each box is a closed
        polygon of its four corners, with a text label ``"<class> <score>"`` at its top-left corner;
        ``stamp_ns`` is the image's stamp, so Foxglove draws them on that image."""
        fox = self._fox
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not len(boxes) == len(scores) == len(labels):
            raise DataError(f"{topic}: {len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels do not match")
        stamp = self._timestamp(stamp_ns)
        points, texts = [], []
        for (x1, y1, x2, y2), score, label in zip(boxes, scores, labels, strict=True):
            label = int(label)
            name = class_names[label] if 0 <= label < len(class_names) else str(label)
            color = self._color(label)
            corners = [fox.Point2(x=x, y=y) for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))]
            points.append(fox.PointsAnnotation(
                timestamp=stamp, type=fox.PointsAnnotation.LINE_LOOP, points=corners,
                outline_color=color, thickness=2.0))
            texts.append(fox.TextAnnotation(
                timestamp=stamp, position=fox.Point2(x=x1, y=y1), text=f"{name} {float(score):.2f}",
                font_size=12.0, text_color=fox.Color(r=0, g=0, b=0, a=1), background_color=color))
        msg = fox.ImageAnnotations(points=points, texts=texts)
        self._write_proto(topic, msg, stamp_ns)

    def write_boxes_3d(self, topic: str, boxes: Sequence[Box3D], *, stamp_ns: int, frame_id: str = "ego") -> None:
        """3D boxes as one ``SceneUpdate`` entity (id ``topic``) of cubes with text labels; each
        update replaces the previous one in Foxglove's 3D panel."""
        fox = self._fox
        stamp = self._timestamp(stamp_ns)
        cubes, texts = [], []
        for box in boxes:
            q = fox.Quaternion(x=0.0, y=0.0, z=math.sin(box.yaw / 2), w=math.cos(box.yaw / 2))
            x, y, z = box.center
            color = self._color(box.class_id, alpha=0.4)
            cubes.append(fox.CubePrimitive(
                pose=fox.Pose(position=fox.Vector3(x=x, y=y, z=z), orientation=q),
                size=fox.Vector3(x=box.size[0], y=box.size[1], z=box.size[2]), color=color))
            top = fox.Vector3(x=x, y=y, z=z + box.size[2] / 2)
            texts.append(fox.TextPrimitive(
                pose=fox.Pose(position=top, orientation=fox.Quaternion(w=1.0)),
                billboard=True, font_size=12.0, scale_invariant=True, color=self._color(box.class_id),
                text=f"{box.label} {box.score:.2f}"))
        entity = fox.SceneEntity(timestamp=stamp, frame_id=frame_id, id=topic, cubes=cubes, texts=texts)
        self._write_proto(topic, fox.SceneUpdate(entities=[entity]), stamp_ns)

    def write_status(self, topic: str, status: SetStatus, *, stamp_ns: int) -> None:
        """One frame set's ``SetStatus`` as JSON, stamped with the set's time."""
        stamp_ns = self._check_stamp(topic, stamp_ns)
        data = json.dumps(status.to_json(stamp_ns), separators=(",", ":")).encode()
        with self._lock:
            schema_name = STATUS_SCHEMA["title"]
            if schema_name not in self._schemas:
                self._schemas[schema_name] = self._writer.register_schema(
                    name=schema_name, encoding="jsonschema", data=json.dumps(STATUS_SCHEMA).encode())
            self._add(topic, schema_name, "json", data, stamp_ns)

    # ---- plumbing -----------------------------------------------------------------------------
    def _write_proto(self, topic: str, msg, stamp_ns: int) -> None:
        stamp_ns = self._check_stamp(topic, stamp_ns)
        schema_name = type(msg).DESCRIPTOR.full_name
        with self._lock:
            if schema_name not in self._schemas:
                self._schemas[schema_name] = self._register(self._writer, type(msg))
            self._add(topic, schema_name, "protobuf", msg.SerializeToString(), stamp_ns)

    def _add(self, topic: str, schema_name: str, encoding: str, data: bytes, stamp_ns: int) -> None:
        """Write one message (the caller holds the lock); a topic keeps the type it was opened with."""
        if not self._open:
            raise DataError(f"{self.path} is closed; nothing more can be written to it")
        if topic not in self._channels:
            channel_id = self._writer.register_channel(topic=topic, message_encoding=encoding,
                                                       schema_id=self._schemas[schema_name])
            self._channels[topic] = (channel_id, schema_name)
        channel_id, topic_schema = self._channels[topic]
        if topic_schema != schema_name:
            raise DataError(f"topic {topic} holds {topic_schema} messages; write {schema_name} to another topic")
        sequence = self._sequence.get(channel_id, 0)
        self._sequence[channel_id] = sequence + 1
        self._writer.add_message(channel_id=channel_id, log_time=stamp_ns, publish_time=stamp_ns, data=data,
                                 sequence=sequence)
        self.messages += 1

    def _timestamp(self, stamp_ns: int):
        seconds, nanos = divmod(int(stamp_ns), 1_000_000_000)
        return self._fox.Timestamp(seconds=seconds, nanos=nanos)

    def _color(self, class_id: int, *, alpha: float = 1.0):
        """A stable, distinct colour per class (golden-ratio hues)."""
        r, g, b = colorsys.hsv_to_rgb((class_id * 0.618034) % 1.0, 0.75, 1.0)
        return self._fox.Color(r=r, g=g, b=b, a=alpha)

    @staticmethod
    def _check_stamp(topic: str, stamp_ns: int) -> int:
        if int(stamp_ns) != stamp_ns or stamp_ns < 0:
            raise DataError(f"{topic}: stamp_ns must be a non-negative integer (ns), got {stamp_ns!r}")
        return int(stamp_ns)

    # ---- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Write the index and footer and rename the file into place."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            try:
                self._writer.finish()
                self._fh.close()
            except BaseException as exc:
                self._fh.close()
                self._atomic.__exit__(type(exc), exc, exc.__traceback__)
                raise
            self._atomic.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop the file: nothing is left at ``path`` (an older file there is kept)."""
        with self._lock:
            if not self._open:
                return
            self._open = False
            self._fh.close()
            stop = DataError(f"writing {self.path} was aborted")
            self._atomic.__exit__(DataError, stop, None)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()
        else:
            self.abort()


#: the Foxglove protobuf messages the writer builds, by their short names
_FOXGLOVE_MESSAGES = ("CompressedImage", "RawImage", "ImageAnnotations", "PointsAnnotation", "TextAnnotation",
                      "Point2", "Color", "SceneUpdate", "SceneEntity", "CubePrimitive", "TextPrimitive", "Pose",
                      "Vector3", "Quaternion")


def _foxglove_types() -> SimpleNamespace:
    """The Foxglove message classes (``foxglove_schemas_protobuf`` has one module per message) and
    protobuf's ``Timestamp``."""
    types = {name: getattr(extra.load(f"foxglove_schemas_protobuf.{name}_pb2"), name) for name in _FOXGLOVE_MESSAGES}
    return SimpleNamespace(**types, Timestamp=extra.load("google.protobuf.timestamp_pb2").Timestamp)
