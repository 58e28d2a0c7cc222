"""Recording cameras in the runtime: frames and stamps exactly as recorded, sets by recorded
stamp (the same twice), a damaged recording fails its own camera only."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from recording_files import T0, Msg, stream, write_foxglove_mcap, write_ros2_bag, write_ros2_mcap

from vitdeploy.errors import RigConfigError
from vitdeploy.runtime.rig import Camera, Outputs, Rig, parse_rig
from vitdeploy.runtime.run import RunOptions, run_rig, start_cameras, stop_sources
from vitdeploy.runtime.sources import Clock, Health, open_source
from vitdeploy.runtime.sync import Synchronizer

ROS_COMPRESSED = "sensor_msgs/msg/CompressedImage"
ROS_IMAGE = "sensor_msgs/msg/Image"
MS = 1_000_000


def drain(source, *, limit: int = 100):
    """Every frame an unpaced source delivers, taking each (as the synchroniser does)."""
    source.start()
    frames = []
    try:
        while len(frames) < limit:
            newest = source.newest()
            if newest is not None and (not frames or newest.index > frames[-1].index):
                frames.append(newest)
                source.take(newest)
            elif source.health().finished and (newest is None or newest.index == frames[-1].index):
                break
            else:
                threading.Event().wait(0.002)
    finally:
        source.stop()
    return frames


def rgb(msgs):
    return [Msg(m.stamp_ns, m.log_ns, m.pixels, "rgb8") for m in msgs]


@pytest.mark.parametrize("kind", ["ros-compressed", "ros-image", "foxglove", "db3"])
def test_a_recording_camera_delivers_every_frame_with_its_header_stamp(tmp_path, kind):
    msgs = stream(6, period_ns=33 * MS)  # logged 3 ms after their stamps: the stamp must win
    if kind == "ros-compressed":
        path = write_ros2_mcap(tmp_path / "d.mcap", {"/cam/compressed": (ROS_COMPRESSED, msgs)})
    elif kind == "ros-image":
        msgs = rgb(msgs)
        path = write_ros2_mcap(tmp_path / "d.mcap", {"/cam/compressed": (ROS_IMAGE, msgs)})
    elif kind == "foxglove":
        path = write_foxglove_mcap(tmp_path / "d.mcap", {"/cam/compressed": ("foxglove.CompressedImage", msgs)})
    else:
        path = write_ros2_bag(tmp_path / "bag", {"/cam/compressed": (ROS_COMPRESSED, msgs)})
        path = next(path.glob("*.db3"))
    uri = f"{path.relative_to(tmp_path)}#/cam/compressed"
    frames = drain(open_source(Camera("front", uri, fps=30), paced=False, base_dir=tmp_path))
    assert [f.stamp_ns for f in frames] == [m.stamp_ns for m in msgs]
    assert [f.index for f in frames] == list(range(6)) and {f.clock for f in frames} == {Clock.RECORDING}
    for f, m in zip(frames, msgs, strict=True):
        np.testing.assert_array_equal(f.image, m.pixels)


def test_the_topic_comes_from_the_rig_file_or_the_only_image_topic(tmp_path):
    msgs = stream(3)
    write_ros2_mcap(tmp_path / "one.mcap", {"/only": (ROS_COMPRESSED, msgs)})  # plus a /diagnostics String topic
    rig = parse_rig('[[cameras]]\nname = "a"\nsource = "one.mcap"\n\n[[cameras]]\nname = "b"\nsource = "one.mcap"\n'
                    'topic = "/only"\n', base_dir=tmp_path)
    assert rig.cameras[0].fps == 10.0 and rig.cameras[1].topic == "/only"  # fps optional for recordings
    for camera in rig.cameras:
        assert [f.stamp_ns for f in drain(open_source(camera, paced=False, base_dir=tmp_path))] == \
            [m.stamp_ns for m in msgs]
    with pytest.raises(RigConfigError, match="topic is for recordings"):
        open_source(Camera("c", "video.mp4", fps=10, topic="/cam"))
    with pytest.raises(RigConfigError, match="a recording plays once"):
        open_source(Camera("c", "one.mcap", fps=10, loop=True), base_dir=tmp_path)


def staggered(tmp_path):
    """Three cameras at 10 Hz, stamped 0, 15 and 30 ms into each period; the third starts a period
    late and lost its frame 3 (a dropped message)."""
    a = stream(6, seed=1)
    b = stream(6, offset_ns=15 * MS, seed=2)
    c = [m for k, m in enumerate(stream(6, offset_ns=130 * MS, seed=3)) if k != 2]  # stamps 130, 230, 430, 530, 630 ms
    path = write_ros2_mcap(tmp_path / "rig.mcap", {"/a": (ROS_COMPRESSED, a), "/b": (ROS_COMPRESSED, b),
                                                   "/c": (ROS_COMPRESSED, c)})
    cams = tuple(Camera(n, f"rig.mcap#/{n}", fps=10) for n in "abc")
    return path, cams


def sets_by_stamp(tmp_path, cams):
    sources = [open_source(c, paced=False, base_dir=tmp_path) for c in cams]
    epoch, left = start_cameras(sources, timeout_s=5.0, stop=lambda: False)
    sync = Synchronizer(sources, rate_hz=0, tolerance_s=0.05, fallback_size=(24, 32), epoch=epoch,
                        startup_timeout_s=left)
    stop, out = threading.Event(), []
    try:
        while (fs := sync.next_set(stop)) is not None:
            out.append([(s.camera, s.frame_index, None if s.missing else s.stamp_ns - T0) for s in fs.slots])
    finally:
        stop_sources(sources, timeout=1.0)
    assert sync.by_stamp and sum(sync.skipped.values()) == 0
    return out


def test_staggered_recordings_synchronise_into_the_expected_sets_twice(tmp_path):
    _, cams = staggered(tmp_path)
    ms = MS
    expected = [
        [("a", 0, 0), ("b", 0, 15 * ms), ("c", None, None)],  # c's first frame (130 ms) is a period later
        [("a", 1, 100 * ms), ("b", 1, 115 * ms), ("c", 0, 130 * ms)],
        [("a", 2, 200 * ms), ("b", 2, 215 * ms), ("c", 1, 230 * ms)],
        [("a", 3, 300 * ms), ("b", 3, 315 * ms), ("c", None, None)],  # c's message at 330 ms was dropped
        [("a", 4, 400 * ms), ("b", 4, 415 * ms), ("c", 2, 430 * ms)],
        [("a", 5, 500 * ms), ("b", 5, 515 * ms), ("c", 3, 530 * ms)],
        [("a", None, None), ("b", None, None), ("c", 4, 630 * ms)],  # the last frame is not skipped either
    ]
    assert sets_by_stamp(tmp_path, cams) == expected
    assert sets_by_stamp(tmp_path, cams) == expected


def test_a_broken_recording_fails_its_camera_while_the_others_run(bundle, tmp_path):
    good = stream(8, period_ns=50 * MS)
    write_ros2_mcap(tmp_path / "good.mcap", {"/cam": (ROS_COMPRESSED, good)})
    cut = write_ros2_mcap(tmp_path / "cut.mcap", {"/cam": (ROS_COMPRESSED, stream(8, period_ns=50 * MS))})
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # a recorder killed mid-write
    damaged = write_ros2_mcap(tmp_path / "damaged.mcap", {"/cam": (ROS_COMPRESSED, good)}, compress_chunks=False)
    data = bytearray(damaged.read_bytes())
    signature = b"\x89PNG\r\n\x1a\n"
    second = data.index(signature, data.index(signature) + 1)
    data[second:second + len(signature)] = bytes(len(signature))  # frame 1's payload is no longer a PNG
    damaged.write_bytes(bytes(data))
    cams = (Camera("front", "good.mcap#/cam", fps=20), Camera("left", "cut.mcap#/cam", fps=20),
            Camera("right", "damaged.mcap#/cam", fps=20), Camera("rear", "good.mcap#/nope", fps=20))
    rig = Rig(cameras=cams, rate_hz=0, sync_tolerance_ms=20, outputs=Outputs(live=False), base_dir=tmp_path)
    summary = run_rig(rig, bundle=bundle, options=RunOptions(out=tmp_path / "out"))
    by = {c.name: c for c in summary.cameras}
    assert summary.stopped_by == "sources finished" and summary.sets_out == 8
    assert by["front"].frames_out == 8 and by["front"].health is Health.ENDED
    assert by["right"].frames_out == 7 and by["right"].corrupt == 1 and "cannot be decoded as JPEG" in by["right"].last_error
    assert by["left"].health is Health.FAILED and by["left"].frames_out == 0
    assert "is not a readable MCAP file (truncated or corrupt" in by["left"].last_error
    assert "mcap recover" in by["left"].last_error
    assert by["rear"].health is Health.FAILED and "has no topic '/nope'; its image topics are /cam" in by["rear"].last_error
    records = [json.loads(line) for line in (tmp_path / "out" / "frames.jsonl").read_text().splitlines()]
    front = [r["cameras"][0] for r in records]
    assert [c["stamp_ns"] for c in front] == [m.stamp_ns for m in good] and {c["clock"] for c in front} == {"recording"}
    assert [r["stamp_ns"] for r in records] == [m.stamp_ns for m in good]
    assert all(r["box_format"] == "xyxy_pixels" and r["wall_time"] > 1.7e9 for r in records)
    assert [c["frame"] for c in front] == list(range(8))


def test_a_paced_rig_of_recordings_plays_on_the_recorded_clock(bundle, tmp_path):
    msgs = stream(6, period_ns=100 * MS)
    write_ros2_mcap(tmp_path / "d.mcap", {"/a": (ROS_COMPRESSED, msgs),
                                          "/b": (ROS_COMPRESSED, stream(6, period_ns=100 * MS, offset_ns=10 * MS))})
    rig = Rig(cameras=(Camera("a", "d.mcap#/a", fps=10), Camera("b", "d.mcap#/b", fps=10)), rate_hz=10,
              sync_tolerance_ms=40, latency_budget_ms=1000, outputs=Outputs(live=False), base_dir=tmp_path)
    run_rig(rig, bundle=bundle, options=RunOptions(out=tmp_path / "out"))
    records = [json.loads(line) for line in (tmp_path / "out" / "frames.jsonl").read_text().splitlines()]
    for r in records:  # each set pairs a's and b's frames of the same period, captured as recorded
        a, b = r["cameras"]
        if not (a["missing"] or b["missing"]):
            assert a["frame"] == b["frame"] and b["stamp_ns"] - a["stamp_ns"] == 10 * MS
            assert b["capture"] - a["capture"] == pytest.approx(0.010, abs=1e-6)
    assert sum(not r["cameras"][0]["missing"] for r in records) >= 4


def test_frames_of_live_and_file_cameras_carry_wall_clock_stamps():
    import time

    source = open_source(Camera("front", "synthetic://front?size=64x96", fps=50), paced=False)
    before = time.time_ns()
    frames = drain(source, limit=3)
    assert len(frames) == 3 and all(f.clock is Clock.WALL and before <= f.stamp_ns <= time.time_ns() for f in frames)


def test_camera_uris_make_a_rig_and_a_recording_gives_every_image_topic(tmp_path):
    from vitdeploy.runtime.rig import uri_rig
    from vitdeploy.runtime.sources.recording import topic_names

    assert topic_names(["/cam_front/image_raw/compressed", "/cam_left/image_raw/compressed"]) == ["cam_front", "cam_left"]
    assert topic_names(["/front/image"]) == ["front"]
    assert topic_names(["/a/x", "/b/x", "/a/y"]) == ["a_x", "b_x", "a_y"]
    _, cams = staggered(tmp_path)
    rig = uri_rig(["rig.mcap", "left=rig.mcap#/b", "synthetic://front"], rate_hz=0, base_dir=tmp_path)
    assert [(c.name, c.source) for c in rig.cameras] == [
        ("a", "rig.mcap#/a"), ("b", "rig.mcap#/b"), ("c", "rig.mcap#/c"), ("left", "rig.mcap#/b"),
        ("cam4", "synthetic://front")]
    with pytest.raises(RigConfigError, match="camera names must be unique; repeated: a"):
        uri_rig(["rig.mcap", "rig.mcap#/a"], rate_hz=0, base_dir=tmp_path)


def test_cli_run_on_a_recording_writes_jsonl_and_results_mcap(bundle, invoke, tmp_path, monkeypatch):
    staggered(tmp_path)
    monkeypatch.chdir(tmp_path)
    r = invoke("run", bundle.path, "--camera", "rig.mcap", "--out", "out", "--mcap", "results.mcap", "--no-live")
    assert r.exit_code == 0, r.output
    assert "free-running" in r.output and "results.mcap" in r.output
    records = [json.loads(line) for line in (tmp_path / "out" / "frames.jsonl").read_text().splitlines()]
    assert len(records) == 7 and [c["name"] for c in records[0]["cameras"]] == ["a", "b", "c"]
    from vitdeploy.data.recordings import open_recording

    with open_recording(tmp_path / "results.mcap") as rec:
        topics = {t.topic: t.count for t in rec.info().topics}
    assert topics["/vitdeploy/status"] == 7 and [topics[f"/{n}/annotations"] for n in "abc"] == [6, 6, 5]
