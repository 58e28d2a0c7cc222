"""Reading recordings written by the libraries people record with: frames and stamps come back
exactly, topics list right, damaged files and wrong topics give one clear line."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from recording_files import (
    T0,
    Msg,
    frame,
    smooth_frame,
    stream,
    write_foxglove_mcap,
    write_ros2_bag,
    write_ros2_mcap,
)

from vitdeploy.data.recordings import CorruptFrameError, UnsupportedImageError, open_recording
from vitdeploy.errors import DataError, MissingDependencyError

ROS_COMPRESSED = "sensor_msgs/msg/CompressedImage"
ROS_IMAGE = "sensor_msgs/msg/Image"


def raw(msgs: list[Msg], encoding: str = "rgb8") -> list[Msg]:
    return [Msg(m.stamp_ns, m.log_ns, m.pixels, encoding) for m in msgs]


def read_all(path, topic):
    with open_recording(path) as rec:
        return list(rec.frames(topic))


def assert_frames(frames, msgs, expected_images):
    assert [f.index for f in frames] == list(range(len(msgs)))
    assert [f.stamp_ns for f in frames] == [m.stamp_ns for m in msgs]  # the header stamp, not the log time
    assert [f.log_time_ns for f in frames] == [m.log_ns for m in msgs]
    for f, image in zip(frames, expected_images, strict=True):
        assert f.image.dtype == np.uint8 and f.image.flags.c_contiguous
        np.testing.assert_array_equal(f.image, image)


def test_ros2_compressed_png_and_raw_image_in_mcap(tmp_path):
    png, rgb = stream(5), raw(stream(4, seed=1))
    path = write_ros2_mcap(tmp_path / "drive.mcap", {"/front/compressed": (ROS_COMPRESSED, png),
                                                     "/left/image_raw": (ROS_IMAGE, rgb)})
    assert_frames(read_all(path, "/front/compressed"), png, [m.pixels for m in png])
    assert_frames(read_all(path, "/left/image_raw"), rgb, [m.pixels for m in rgb])
    assert read_all(path, "/front/compressed")[2].stamp == pytest.approx((T0 + 200_000_000) / 1e9)


def test_ros2_jpeg_is_close(tmp_path):
    msgs = [Msg(T0 + k, T0 + k, smooth_frame(k), "jpeg") for k in range(3)]
    frames = read_all(write_ros2_mcap(tmp_path / "j.mcap", {"/cam": (ROS_COMPRESSED, msgs)}), "/cam")
    errors = [np.abs(f.image.astype(int) - m.pixels.astype(int)).mean() for f, m in zip(frames, msgs, strict=True)]
    assert len(frames) == 3 and max(errors) < 3.0


def test_ros2_bgr_mono_and_bayer_images(tmp_path):
    image = frame(0)
    bayer_scene = np.zeros((24, 32, 3), np.uint8)
    bayer_scene[:] = (180, 60, 30)
    bayer = np.zeros((24, 32), np.uint8)  # rggb mosaic of a flat colour
    bayer[0::2, 0::2], bayer[0::2, 1::2], bayer[1::2, 0::2], bayer[1::2, 1::2] = 180, 60, 60, 30
    topics = {
        "/bgr": (ROS_IMAGE, [Msg(T0, T0, np.ascontiguousarray(image[..., ::-1]), "bgr8")]),
        "/mono": (ROS_IMAGE, [Msg(T0, T0, image[..., 1].copy(), "mono8")]),
        "/bayer": (ROS_IMAGE, [Msg(T0, T0, bayer, "bayer_rggb8")]),
    }
    path = write_ros2_mcap(tmp_path / "raw.mcap", topics)
    np.testing.assert_array_equal(read_all(path, "/bgr")[0].image, image)
    np.testing.assert_array_equal(read_all(path, "/mono")[0].image, np.repeat(image[..., 1:2], 3, axis=2))
    np.testing.assert_array_equal(read_all(path, "/bayer")[0].image, bayer_scene)


def test_foxglove_compressed_and_raw_images_in_mcap(tmp_path):
    png, rgb = stream(3), raw(stream(3, seed=2))
    path = write_foxglove_mcap(tmp_path / "fox.mcap", {"/front": ("foxglove.CompressedImage", png),
                                                       "/rear": ("foxglove.RawImage", rgb)})
    assert_frames(read_all(path, "/front"), png, [m.pixels for m in png])
    assert_frames(read_all(path, "/rear"), rgb, [m.pixels for m in rgb])
    with open_recording(path) as rec:
        assert {t.topic: (t.message_type, t.message_encoding) for t in rec.info().topics} == {
            "/front": ("foxglove.CompressedImage", "protobuf"), "/rear": ("foxglove.RawImage", "protobuf")}


def test_db3_bag_folder_and_bare_db3_file(tmp_path):
    png, rgb = stream(4), raw(stream(3, seed=3))
    bag = write_ros2_bag(tmp_path / "bag", {"/front": (ROS_COMPRESSED, png), "/side": (ROS_IMAGE, rgb)})
    for path in (bag, next(bag.glob("*.db3"))):
        assert_frames(read_all(path, "/front"), png, [m.pixels for m in png])
        assert_frames(read_all(path, "/side"), rgb, [m.pixels for m in rgb])
        with open_recording(path) as rec:
            assert rec.format == "ROS 2 bag" and rec.info().image_topics == ["/front", "/side"]


def test_a_bag_folder_with_mcap_storage_reads_as_a_bag_and_its_file_as_mcap(tmp_path):
    msgs = stream(4)
    bag = write_ros2_bag(tmp_path / "bag", {"/front": (ROS_COMPRESSED, msgs)}, storage="mcap")
    inner = next(bag.glob("*.mcap"))
    for path, fmt in ((bag, "ROS 2 bag"), (inner, "MCAP")):
        with open_recording(path) as rec:
            assert rec.format == fmt and rec.info().image_topics == ["/front"]
        assert_frames(read_all(path, "/front"), msgs, [m.pixels for m in msgs])


def test_reading_a_topic_from_the_start_does_not_scan_the_whole_bag_first(tmp_path, monkeypatch):
    msgs = stream(3)
    bag = write_ros2_bag(tmp_path / "bag", {"/front": (ROS_COMPRESSED, msgs)})
    with open_recording(bag) as rec:
        # a .db3 has no index: listing spans needs a pass over every message; streaming must not
        monkeypatch.setattr(rec._store, "log_times", lambda: pytest.fail("scanned the bag before streaming"))
        assert [f.stamp_ns for f in rec.frames("/front")] == [m.stamp_ns for m in msgs]


def test_a_zero_header_stamp_falls_back_to_the_log_time(tmp_path):
    msgs = [Msg(0, T0 + 5, frame(0), "png")]
    [f] = read_all(write_ros2_mcap(tmp_path / "nostamp.mcap", {"/cam": (ROS_COMPRESSED, msgs)}), "/cam")
    assert f.stamp_ns == f.log_time_ns == T0 + 5


@pytest.fixture
def staggered(tmp_path):
    """Three cameras: 10 Hz, 10 Hz started 33 ms later, and 5 Hz; plus a non-image topic."""
    cams = {"/front": stream(10, seed=0), "/left": stream(10, offset_ns=33_000_000, seed=1),
            "/rear": stream(5, period_ns=200_000_000, offset_ns=66_000_000, seed=2)}
    path = write_ros2_mcap(tmp_path / "rig.mcap", {t: (ROS_COMPRESSED, m) for t, m in cams.items()})
    return path, cams


def test_staggered_cameras_list_and_iterate(staggered):
    path, cams = staggered
    with open_recording(path) as rec:
        info = rec.info()
        assert info.image_topics == ["/front", "/left", "/rear"]
        topics = {t.topic: t for t in info.topics}
        assert topics["/diagnostics"].image_type is None and topics["/diagnostics"].count == 1
        assert [topics[t].count for t in cams] == [10, 10, 5]
        assert [round(topics[t].rate_hz, 6) for t in cams] == [10.0, 10.0, 5.0]
        assert topics["/left"].start_ns == cams["/left"][0].log_ns and topics["/rear"].end_ns == cams["/rear"][-1].log_ns
        assert info.start_ns == T0 and info.end_ns == cams["/left"][-1].log_ns  # /diagnostics is logged at T0
        for topic, msgs in cams.items():
            seed = {"/front": 0, "/left": 1, "/rear": 2}[topic]
            assert_frames(list(rec.frames(topic)), msgs, [frame(k, seed=seed) for k in range(len(msgs))])


def test_sample_spreads_over_the_drive_and_seek_keeps_indices(staggered):
    path, cams = staggered
    with open_recording(path) as rec:
        picked = rec.sample("/front", count=4)
        assert [f.index for f in picked] == [0, 3, 6, 9]
        assert [f.stamp_ns for f in picked] == [cams["/front"][k].stamp_ns for k in (0, 3, 6, 9)]
        np.testing.assert_array_equal(picked[1].image, frame(3))
        assert [f.index for f in rec.sample("/rear", count=50)] == [0, 1, 2, 3, 4]
        window = list(rec.frames("/left", start_ns=cams["/left"][4].log_ns, end_ns=cams["/left"][7].log_ns))
        assert [f.index for f in window] == [4, 5, 6]
        np.testing.assert_array_equal(window[0].image, frame(4, seed=1))


def test_unknown_topic_lists_the_image_topics(staggered):
    path, _ = staggered
    with open_recording(path) as rec, pytest.raises(DataError) as err:
        rec.frames("/front/image_raw")
    assert str(err.value) == f"{path} has no topic '/front/image_raw'; its image topics are /front, /left, /rear"


def test_a_non_image_topic_is_refused_naming_what_works(staggered):
    path, _ = staggered
    with open_recording(path) as rec, pytest.raises(UnsupportedImageError, match="carries std_msgs/msg/String messages, "
                                                    "not images .*; its image topics are /front"):
        rec.sample("/diagnostics", count=3)


def test_an_unsupported_encoding_is_one_clear_line(tmp_path):
    depth = np.zeros((4, 4, 4), np.uint8)  # 32FC1 bytes
    path = write_ros2_mcap(tmp_path / "depth.mcap", {"/depth": (ROS_IMAGE, [Msg(T0, T0, depth, "32FC1")])})
    with open_recording(path) as rec, pytest.raises(UnsupportedImageError) as err:
        next(rec.frames("/depth"))
    assert "'32FC1' is not supported; vitdeploy reads" in str(err.value) and "\n" not in str(err.value)


def test_a_damaged_frame_raises_and_the_next_ones_read(tmp_path):
    msgs = stream(3)
    path = write_ros2_mcap(tmp_path / "d.mcap", {"/cam": (ROS_COMPRESSED, msgs)}, compress_chunks=False)
    data = bytearray(path.read_bytes())
    signature = b"\x89PNG\r\n\x1a\n"
    second = data.index(signature, data.index(signature) + 1)  # frame 1's PNG payload
    data[second:second + len(signature)] = bytes(len(signature))
    path.write_bytes(bytes(data))
    with open_recording(path) as rec:
        good = []
        for message in rec.messages("/cam"):
            if message.index == 1:
                with pytest.raises(CorruptFrameError, match="cannot be decoded as JPEG, PNG or WebP"):
                    message.decode()
            else:
                good.append(message.decode())
    assert [f.index for f in good] == [0, 2]
    np.testing.assert_array_equal(good[1].image, msgs[2].pixels)


def test_a_truncated_mcap_names_the_repair(tmp_path):
    path = write_ros2_mcap(tmp_path / "cut.mcap", {"/cam": (ROS_COMPRESSED, stream(5))})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a recorder killed mid-write
    with pytest.raises(DataError) as err:
        open_recording(path)
    text = str(err.value)
    assert text.startswith(f"{path} is not a readable MCAP file (truncated or corrupt") and "\n" not in text
    assert f"mcap recover {path} -o repaired.mcap" in text


def test_a_damaged_chunk_is_a_clear_error_when_read(tmp_path):
    from mcap.reader import make_reader

    path = write_ros2_mcap(tmp_path / "chunk.mcap", {"/cam": (ROS_COMPRESSED, stream(5))})
    with open(path, "rb") as fh:
        chunk = make_reader(fh).get_summary().chunk_indexes[0].chunk_start_offset
    data = bytearray(path.read_bytes())
    data[chunk + 33:chunk + 49] = b"\xff" * 16  # the chunk's compression name: no longer readable
    path.write_bytes(bytes(data))
    with open_recording(path) as rec:
        assert rec.info().topics[0].count == 5  # the summary at the end still lists it
        with pytest.raises(DataError, match=r"is not a readable MCAP file \(truncated or corrupt: .*mcap recover"):
            list(rec.frames("/cam"))


def test_a_corrupt_db3_is_a_clear_error(tmp_path):
    bag = write_ros2_bag(tmp_path / "bag", {"/cam": (ROS_COMPRESSED, stream(3))})
    db3 = next(bag.glob("*.db3"))
    db3.write_bytes(b"this is not sqlite" * 100)
    for path in (bag, db3):
        with pytest.raises(DataError, match=r"is not a readable ROS 2 bag \(truncated or corrupt"), \
                open_recording(path) as rec:
            rec.info()


@pytest.mark.parametrize("name, message", [
    ("missing.mcap", "does not exist; give an .mcap file, a .db3 file or a ROS 2 bag folder"),
    ("drive.bag", "is not a recording vitdeploy reads"),
    ("folder", "is a folder without metadata.yaml, so not a ROS 2 bag"),
    ("garbage.mcap", "is not an MCAP file \\(it does not start with the MCAP magic bytes\\)"),
])
def test_paths_that_are_not_recordings(tmp_path, name, message):
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
    elif name != "missing.mcap":
        path.write_bytes(b"not a recording at all " * 10)
    with pytest.raises(DataError, match=message):
        open_recording(path)


def test_an_mcap_without_indexes_is_read_by_scanning(tmp_path):
    from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
    from mcap.writer import IndexType, Writer
    from mcap_protobuf.schema import register_schema
    from recording_files import foxglove_message

    msgs = stream(4)
    path = tmp_path / "noindex.mcap"
    with open(path, "wb") as fh:
        writer = Writer(fh, index_types=IndexType.NONE, use_summary_offsets=False)
        writer.start()
        channel = writer.register_channel("/cam", "protobuf", register_schema(writer, CompressedImage))
        for m in msgs:
            writer.add_message(channel, log_time=m.log_ns, publish_time=m.log_ns,
                               data=foxglove_message(m, "foxglove.CompressedImage").SerializeToString())
        writer.finish()
    with open_recording(path) as rec:
        assert rec.info().topics[0].count == 4
        assert [f.index for f in rec.sample("/cam", count=2)] == [0, 3]
    assert_frames(read_all(path, "/cam"), msgs, [m.pixels for m in msgs])


def test_without_the_extra_the_error_names_the_install(tmp_path, monkeypatch):
    path = write_ros2_mcap(tmp_path / "a.mcap", {"/cam": (ROS_COMPRESSED, stream(1))})
    monkeypatch.setitem(sys.modules, "mcap_ros2.decoder", None)  # as if mcap-ros2-support were not installed
    with pytest.raises(MissingDependencyError) as err:
        open_recording(path)
    assert "`mcap-ros2-support`" in str(err.value) and 'pip install "vitdeploy[recordings]"' in str(err.value)
