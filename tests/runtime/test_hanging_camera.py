"""A camera that hangs costs the rig nothing: not at start-up, not in the sinks, not at Ctrl-C
(DESIGN.md decision 6). Network cameras are real loopback servers this test starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from fakes import SIZE, frame, write_video
from streams import MjpegServer, SilentServer

from vitdeploy.runtime.sources import Health
from vitdeploy.runtime.sources.video import CaptureSource


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def mjpeg():
    server = MjpegServer(size=SIZE, fps=20)
    yield server
    server.close()


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_hanging_open_blocks_no_other_opencv_user_and_stops_at_once(silent, tmp_path):
    source = CaptureSource("dash", silent.url, fps=20, timeout_s=30.0)
    source.start()
    try:
        assert wait_until(lambda: silent.clients, 10.0)  # the capture is now stuck opening the stream
        started = time.monotonic()
        writer = cv2.VideoWriter(str(tmp_path / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (SIZE[1], SIZE[0]))
        assert writer.isOpened()
        writer.release()
        # in-process, OpenCV's FFmpeg open lock made this wait for the stream's whole open timeout
        assert time.monotonic() - started < 0.5
        assert source.health() in (Health.STARTING, Health.STALLED)
    finally:
        started = time.monotonic()
        source.stop(timeout=2.0)
    assert time.monotonic() - started < 1.0 and source.join(0)


def test_a_capture_that_never_answers_times_out_and_is_reopened(silent):
    source = CaptureSource("dash", silent.url, fps=20, timeout_s=0.5, reconnect_interval_s=0.05)
    source.start()
    try:
        assert wait_until(lambda: source.status().reconnects >= 2, 15.0)
        status = source.status()
        assert status.frames == 0 and "within timeout_s = 0.5 s" in status.last_error
    finally:
        source.stop()


def test_a_stream_that_stalls_and_drops_out_comes_back(mjpeg):
    source = CaptureSource("dash", mjpeg.url, fps=20, timeout_s=0.5, reconnect_interval_s=0.1)
    source.start()
    try:
        assert wait_until(lambda: source.status().frames >= 3, 15.0)
        f = source.newest()
        assert f.image.shape == (*SIZE, 3) and f.image.dtype == np.uint8
        assert f.image.std() < 3  # the server's flat grey frames, decoded in the capture's process
        mjpeg.stall = True  # connected, silent: the read times out and the capture is reopened
        assert wait_until(lambda: source.status().reconnects >= 1, 10.0)
        mjpeg.online = False
        time.sleep(0.3)
        before = source.status().frames
        mjpeg.stall, mjpeg.online = False, True
        assert wait_until(lambda: source.status().frames >= before + 3, 15.0)
        assert source.health() is Health.OK and mjpeg.connections >= 2
    finally:
        source.stop()


def test_a_live_capture_reads_its_frames_from_the_pipe_straight_into_its_rows(mjpeg):
    """Given camera rows, the parent reads each frame from the capture process's pipe into its row
    (no array of its own); the pixels are the stream's."""
    from vitdeploy.runtime.batches import CameraRows

    rows = CameraRows(1, SIZE)
    source = CaptureSource("dash", mjpeg.url, fps=20, timeout_s=2.0)
    assert source.use_rows(rows, 0)
    source.start()
    try:
        assert wait_until(lambda: source.status().frames >= 3, 15.0)
        f = source.newest()
        assert f.hold is not None and f.image.base is rows.batches[f.hold.batch]
        grey = float(f.image.mean())  # the server's frame k is a flat grey of 10 k
        assert f.image.shape == (*SIZE, 3) and f.image.std() < 3 and min(grey % 10, 10 - grey % 10) < 3
    finally:
        source.stop()


def write_rig(folder, *, hang_url: str) -> None:
    write_video(folder / "rear.mp4", 40, fps=10)
    images = folder / "images"
    images.mkdir()
    for k in range(10):
        cv2.imwrite(str(images / f"{k:03d}.png"), frame(25 * k))
    cams = [("front", "synthetic://front?size=64x96&loop=4", ""),
            ("front_left", "synthetic://front_left?size=64x96&loop=4", ""),
            ("rear", "rear.mp4", "loop = true"),
            ("rear_right", "images", "loop = true"),
            ("dash", hang_url, "reconnect_interval_s = 0.2")]
    # the defaults: start-up waits at most 2 s, a capture at most 5 s to open
    text = ("rate_hz = 10\nsync_tolerance_ms = 100\nlatency_budget_ms = 1000\n"
            '[outputs]\njsonl = "frames.jsonl"\nvideo = "mosaic"\nlive = false\n')
    for name, source, extra in cams:
        text += f'[[cameras]]\nname = "{name}"\nsource = "{source}"\nfps = 10\n{extra}\n'
    (folder / "rig.toml").write_text(text)


def test_ctrl_c_ends_a_run_with_a_hanging_camera_within_2_s(exported, silent, tmp_path):
    bundle = exported("vit-test-detr", max_cameras=6)
    write_rig(tmp_path, hang_url=silent.url)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vitdeploy.cli.app", "run", str(bundle.path), "--rig", str(tmp_path / "rig.toml"),
         "--out", str(out), "--no-live"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    jsonl = out / "frames.jsonl"
    try:
        assert wait_until(lambda: jsonl.is_file() and jsonl.read_text().count("\n") >= 30 or proc.poll() is not None,
                          60.0)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took <= 2.0, output
    assert proc.returncode == 3, output  # ran, but without a camera: the distinct exit code
    assert "stopped by interrupted" in output and "cameras lost: dash" in output and "Traceback" not in output
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]  # every line whole
    assert len(records) >= 30
    first = records[0]["timestamps"]
    assert first["sync"] - first["tick"] < 2.0 + 0.5  # start-up waited at most its timeout for the camera
    assert [r["set"] for r in records] == list(range(len(records)))  # no set dropped
    healthy = ("front", "front_left", "rear", "rear_right")
    for name in healthy:
        present = sum(not c["missing"] for r in records[1:] for c in r["cameras"] if c["name"] == name)
        assert present >= 0.9 * (len(records) - 1), name
    assert all(r["cameras"][4]["missing"] for r in records)
    cap = cv2.VideoCapture(str(out / "mosaic.mp4"))  # closed properly: readable, every set in it
    assert cap.read()[0] and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(records)
