"""What RecordingWriter writes reads back, with the mcap reader and Foxglove's own schemas, as
exactly what was written; the file appears only complete."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from foxglove_schemas_protobuf.ImageAnnotations_pb2 import ImageAnnotations
from foxglove_schemas_protobuf.PointsAnnotation_pb2 import PointsAnnotation
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from mcap.reader import make_reader
from recording_files import T0, frame, smooth_frame

from vitdeploy.data.recordings import (
    BOXES_3D_TOPIC,
    STATUS_TOPIC,
    Box3D,
    ImageFormat,
    RecordingWriter,
    SetStatus,
    annotations_topic,
    image_topic,
    open_recording,
)
from vitdeploy.errors import DataError

CAMERAS = ("front", "left", "rear")


def stamps(camera: int) -> list[int]:
    """Staggered capture stamps: 10 Hz per camera, cameras 7 ms apart."""
    return [T0 + k * 100_000_000 + camera * 7_000_000 for k in range(4)]


def mcap_messages(path, topic):
    """(schema, channel, message) of ``topic``, read with the mcap library alone."""
    with open(path, "rb") as fh:
        return list(make_reader(fh).iter_messages(topics=[topic]))


@pytest.mark.parametrize("fmt", [ImageFormat.PNG, ImageFormat.RAW, ImageFormat.JPEG])
def test_frames_read_back_with_their_stamps(tmp_path, fmt):
    path = tmp_path / "drive.mcap"
    make = smooth_frame if fmt is ImageFormat.JPEG else frame
    with RecordingWriter(path, image_format=fmt) as writer:
        for k in range(4):
            for c, camera in enumerate(CAMERAS):
                writer.write_image(image_topic(camera), make(k + 10 * c), stamp_ns=stamps(c)[k], frame_id=camera)
    with open_recording(path) as rec:
        info = rec.info()
        assert info.image_topics == sorted(image_topic(c) for c in CAMERAS)
        expected_type = "foxglove.RawImage" if fmt is ImageFormat.RAW else "foxglove.CompressedImage"
        assert {t.message_type for t in info.topics} == {expected_type}
        for c, camera in enumerate(CAMERAS):
            frames = list(rec.frames(image_topic(camera)))
            assert [f.stamp_ns for f in frames] == [f.log_time_ns for f in frames] == stamps(c)
            for k, f in enumerate(frames):
                if fmt is ImageFormat.JPEG:
                    assert np.abs(f.image.astype(int) - make(k + 10 * c).astype(int)).mean() < 3.0
                else:
                    np.testing.assert_array_equal(f.image, make(k + 10 * c))
    schema, _, message = mcap_messages(path, image_topic("left"))[0]
    assert schema.encoding == "protobuf" and schema.name == expected_type


def test_annotations_decode_with_the_foxglove_schema_to_what_was_written(tmp_path):
    path = tmp_path / "results.mcap"
    boxes = np.array([[10.5, 20.0, 110.25, 80.0], [0.0, 0.0, 5.0, 6.0]])
    scores, labels = np.array([0.875, 0.5]), np.array([1, 7])
    names = ["person", "car"]
    with RecordingWriter(path) as writer:
        writer.write_annotations(annotations_topic("front"), stamp_ns=T0 + 42, boxes=boxes, scores=scores,
                                 labels=labels, class_names=names)
        writer.write_annotations(annotations_topic("front"), stamp_ns=T0 + 100, boxes=np.zeros((0, 4)),
                                 scores=[], labels=[], class_names=names)
    (schema, channel, first), (_, _, empty) = mcap_messages(path, annotations_topic("front"))
    assert (schema.name, schema.encoding, channel.message_encoding) == ("foxglove.ImageAnnotations", "protobuf",
                                                                        "protobuf")
    assert first.log_time == first.publish_time == T0 + 42
    decoded = ImageAnnotations.FromString(first.data)
    assert len(decoded.points) == len(decoded.texts) == 2
    for polygon, text, (x1, y1, x2, y2) in zip(decoded.points, decoded.texts, boxes, strict=True):
        assert polygon.type == PointsAnnotation.LINE_LOOP
        assert [(p.x, p.y) for p in polygon.points] == [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
        assert (polygon.timestamp.seconds * 10**9 + polygon.timestamp.nanos) == T0 + 42
        assert (text.position.x, text.position.y) == (x1, y1)
    assert [t.text for t in decoded.texts] == ["car 0.88", "7 0.50"]  # an id without a name is shown as the id
    assert decoded.points[0].outline_color != decoded.points[1].outline_color
    assert len(ImageAnnotations.FromString(empty.data).points) == 0


def test_3d_boxes_decode_as_scene_cubes(tmp_path):
    path = tmp_path / "boxes.mcap"
    boxes = [Box3D(center=(12.0, -3.5, 0.8), size=(4.5, 1.9, 1.6), yaw=math.pi / 6, label="car", score=0.9, class_id=1),
             Box3D(center=(5.0, 2.0, 0.9), size=(0.6, 0.6, 1.8), yaw=0.0, label="person", score=0.6)]
    with RecordingWriter(path) as writer:
        writer.write_boxes_3d(BOXES_3D_TOPIC, boxes, stamp_ns=T0 + 7)
    [(schema, _, message)] = mcap_messages(path, BOXES_3D_TOPIC)
    assert schema.name == "foxglove.SceneUpdate" and message.log_time == T0 + 7
    [entity] = SceneUpdate.FromString(message.data).entities
    assert entity.frame_id == "ego" and entity.id == BOXES_3D_TOPIC
    for cube, text, box in zip(entity.cubes, entity.texts, boxes, strict=True):
        p, s, q = cube.pose.position, cube.size, cube.pose.orientation
        assert (p.x, p.y, p.z) == box.center and (s.x, s.y, s.z) == box.size
        assert 2 * math.atan2(q.z, q.w) == pytest.approx(box.yaw) and q.x == q.y == 0
        assert text.text == f"{box.label} {box.score:.2f}" and text.pose.position.z == pytest.approx(p.z + s.z / 2)


def test_status_is_json_with_its_schema(tmp_path):
    path = tmp_path / "status.mcap"
    status = SetStatus(set_index=3, latency_ms={"preprocess": 1.5, "infer": 12.25, "end_to_end": 20.0},
                       missing=("rear",), deadline_miss=True, skew_ms=4.0)
    with RecordingWriter(path) as writer:
        writer.write_status(STATUS_TOPIC, status, stamp_ns=T0 + 1_500_000_000)
    [(schema, channel, message)] = mcap_messages(path, STATUS_TOPIC)
    assert (schema.encoding, channel.message_encoding) == ("jsonschema", "json")
    assert json.loads(schema.data)["properties"]["latency_ms"]["additionalProperties"] == {"type": "number"}
    assert json.loads(message.data) == {"timestamp": {"sec": T0 // 10**9 + 1, "nsec": 500_000_000}, "set": 3,
                                        "latency_ms": {"preprocess": 1.5, "infer": 12.25, "end_to_end": 20.0},
                                        "missing": ["rear"], "deadline_miss": True, "skew_ms": 4.0}


def test_an_error_inside_leaves_nothing_and_keeps_an_older_file(tmp_path):
    path = tmp_path / "results.mcap"
    with pytest.raises(RuntimeError), RecordingWriter(path) as writer:
        writer.write_image(image_topic("front"), frame(0), stamp_ns=T0)
        raise RuntimeError("the pipeline broke")
    assert list(tmp_path.iterdir()) == []
    path.write_bytes(b"an older recording")
    with pytest.raises(RuntimeError), RecordingWriter(path) as writer:
        raise RuntimeError("again")
    assert path.read_bytes() == b"an older recording" and len(list(tmp_path.iterdir())) == 1


def test_ctrl_c_inside_still_closes_a_complete_file(tmp_path):
    path = tmp_path / "stopped.mcap"
    with pytest.raises(KeyboardInterrupt), RecordingWriter(path, image_format="png") as writer:
        for k in range(3):
            writer.write_image(image_topic("front"), frame(k), stamp_ns=T0 + k)
        raise KeyboardInterrupt
    with open_recording(path) as rec:
        assert [f.stamp_ns for f in rec.frames(image_topic("front"))] == [T0, T0 + 1, T0 + 2]
    assert [p.name for p in tmp_path.iterdir()] == ["stopped.mcap"]


def test_bad_input_is_a_clear_error(tmp_path):
    with RecordingWriter(tmp_path / "x.mcap") as writer:
        with pytest.raises(DataError, match=r"a frame must be an \(H, W, 3\) uint8 RGB array, got \(4, 4\)"):
            writer.write_image("/cam", np.zeros((4, 4), np.uint8), stamp_ns=T0)
        with pytest.raises(DataError, match="stamp_ns must be a non-negative integer"):
            writer.write_image("/cam", frame(0), stamp_ns=-1)
        writer.write_image("/cam", frame(0), stamp_ns=T0)
        with pytest.raises(DataError, match="topic /cam holds foxglove.CompressedImage messages; write "
                                            "foxglove.ImageAnnotations to another topic"):
            writer.write_annotations("/cam", stamp_ns=T0, boxes=np.zeros((0, 4)), scores=[], labels=[], class_names=[])
        with pytest.raises(DataError, match="2 boxes, 1 scores and 2 labels do not match"):
            writer.write_annotations("/boxes", stamp_ns=T0, boxes=np.zeros((2, 4)), scores=[1.0], labels=[0, 0],
                                     class_names=[])
    with pytest.raises(DataError, match="jpeg_quality must be 1-100"):
        RecordingWriter(tmp_path / "y.mcap", jpeg_quality=0)
