"""Camera sources: frames are RGB uint8 with capture times; failures are reported, never raised."""

import time

import cv2
import numpy as np
import pytest
from fakes import ScriptedSource, StallingSource, corrupt_after, good, raises_after, write_video

from vitdeploy.errors import RigConfigError
from vitdeploy.runtime.rig import Camera
from vitdeploy.runtime.sources import Health, open_source
from vitdeploy.runtime.sources.images import ImageFolderSource
from vitdeploy.runtime.sources.synthetic import SyntheticSource
from vitdeploy.runtime.sources.video import VideoFileSource


def wait_for(predicate, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def drain(source, timeout=3.0):
    """Take every frame an unpaced source delivers until it finishes; returns the frames."""
    frames, end = [], time.monotonic() + timeout
    while time.monotonic() < end:
        finished = source.health().finished  # read before newest(): the last frame comes first
        f = source.newest()
        if f is not None and (not frames or f.index > frames[-1].index):
            frames.append(f)
            source.take(f)
        elif finished:
            break
        time.sleep(0.002)
    return frames


def test_synthetic_source_delivers_rgb_frames_with_capture_times():
    src = open_source(Camera("cam", "synthetic://rear?size=64x96&seed=1&loop=2", fps=50))
    assert isinstance(src, SyntheticSource) and src.size == (64, 96) and src.view == "rear"
    src.start()
    try:
        assert wait_for(lambda: (src.newest() or None) is not None and src.newest().index >= 3)
        f = src.newest()
        assert f.image.shape == (64, 96, 3) and f.image.dtype == np.uint8
        assert 0 < time.monotonic() - f.capture_time < 1.0
        assert src.health() is Health.OK
    finally:
        src.stop()


def test_corrupt_frames_are_skipped_and_counted():
    src = ScriptedSource("cam", corrupt_after(2), fps=100)
    src.start()
    try:
        assert wait_for(lambda: src.status().corrupt >= 4)
        st = src.status()
        assert st.frames == 2  # only the good ones were handed on
        assert "corrupt frame: expected" in st.last_error
        assert src.newest().image.dtype == np.uint8
    finally:
        src.stop()


def test_a_file_source_that_raises_is_failed_with_its_error():
    src = ScriptedSource("cam", raises_after(3), fps=100)
    src.start()
    try:
        assert wait_for(lambda: src.health() is Health.FAILED)
        st = src.status()
        assert st.frames == 3 and "RuntimeError: sensor unplugged" in st.last_error and st.reconnects == 0
    finally:
        src.stop()


def test_a_live_source_is_reopened_until_it_works():
    src = ScriptedSource("cam", good, fps=100, open_failures=2, reconnect_interval_s=0.01)
    src.live = True
    src.start()
    try:
        assert wait_for(lambda: src.status().frames >= 2)
        assert src.status().reconnects == 2 and src.health() is Health.OK
    finally:
        src.stop()


def test_a_live_source_gives_up_after_its_attempts():
    src = ScriptedSource("cam", good, fps=100, open_failures=99, reconnect_interval_s=0.01, reconnect_attempts=2)
    src.live = True
    src.start()
    try:
        assert wait_for(lambda: src.health() is Health.FAILED)
        assert "gave up after 3 attempts" in src.status().last_error
    finally:
        src.stop()


def test_a_hung_source_is_reported_stalled():
    src = StallingSource("cam", good=2, fps=100, stall_timeout_s=0.2)
    src.start()
    try:
        assert wait_for(lambda: src.status().frames == 2)
        assert wait_for(lambda: src.health() is Health.STALLED)
    finally:
        src.stop(timeout=1.0)


def test_a_video_file_ends_or_loops(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, 5)
    src = VideoFileSource("cam", path, fps=20, paced=False)
    src.start()
    frames = drain(src)
    src.stop()
    assert len(frames) == 5 and src.health() is Health.ENDED
    assert frames[1].image.shape == (64, 96, 3) and frames[1].image.dtype == np.uint8
    assert all(a.capture_time < b.capture_time for a, b in zip(frames, frames[1:], strict=False))

    looped = VideoFileSource("cam", path, fps=20, paced=False, loop=True)
    looped.start()
    assert wait_for(lambda: bool(drain(looped, timeout=0.5)) and looped.status().frames > 7)
    looped.stop()


def test_an_image_folder_skips_unreadable_files(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((8, 12, 3), 50 * i, np.uint8))
    (tmp_path / "001b.png").write_bytes(b"not a png")
    src = open_source(Camera("cam", str(tmp_path), fps=20), paced=False)
    assert isinstance(src, ImageFolderSource)
    src.start()
    frames = drain(src)
    src.stop()
    assert len(frames) == 3 and src.status().corrupt == 1 and src.health() is Health.ENDED


@pytest.mark.parametrize(("uri", "message"), [
    ("ftp://host/x", "unknown source scheme 'ftp'"),
    ("synthetic://front?size=big", "size='big'"),
    ("synthetic://front?colour=red", "unknown parameter 'colour'"),
    ("synthetic://?size=64x96", "names no camera"),
])
def test_bad_source_uris(uri, message):
    with pytest.raises(RigConfigError, match=message):
        open_source(Camera("cam", uri, fps=10))


def test_a_video_file_gives_the_decoders_bgr_as_it_comes_when_asked(tmp_path):
    """A fused BGR graph takes the decoder's frames with no colour conversion on the CPU; sources
    that render RGB say so, and the pipeline swaps only theirs."""
    path = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 20.0, (96, 64))
    for k in range(3):
        image = np.zeros((64, 96, 3), np.uint8)
        image[..., 0] = 200  # blue in OpenCV's BGR
        image[:, :10 * (k + 1)] = 40 * k
        writer.write(image)
    writer.release()
    cap = cv2.VideoCapture(str(path))
    decoded = [cap.read()[1] for _ in range(3)]
    frames = {}
    for order in ("BGR", "RGB"):
        src = VideoFileSource("cam", path, fps=20.0, paced=False, channel_order=order)
        assert src.channel_order == order
        src.start()
        got = []
        while len(got) < 3:
            frame = src.newest()
            if frame is not None and (not got or frame.index > got[-1].index):
                got.append(frame)
                src.take(frame)
            time.sleep(0.005)
        src.stop()
        frames[order] = [f.image for f in got]
    assert all(np.array_equal(a, b) for a, b in zip(frames["BGR"], decoded, strict=True))
    assert all(np.array_equal(a, b[..., ::-1]) for a, b in zip(frames["RGB"], decoded, strict=True))
    synthetic = SyntheticSource("front", view="front", fps=10.0, channel_order="BGR")
    assert synthetic.channel_order == "RGB"
