"""docs/rig.jetson.toml: a rig that decodes every camera on a Jetson's hardware decoder (nvv4l2decoder)."""

import re
from pathlib import Path

from vitdeploy.runtime.rig import load_rig, parse_rig
from vitdeploy.runtime.sources import open_source
from vitdeploy.runtime.sources.video import CaptureSource

EXAMPLE = Path(__file__).parents[2] / "docs" / "rig.jetson.toml"
DECODE = "nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink"


def test_the_file_cameras_decode_on_nvdec_into_bgr_frames():
    rig = load_rig(EXAMPLE)
    assert rig.camera_names == ["front", "front_left", "front_right", "rear"]
    assert rig.model.backend == "tensorrt" and rig.model.precision.value == "fp16"
    for camera in rig.cameras:
        assert camera.source.startswith("gst://filesrc location=drives/") and DECODE in camera.source
        assert " ! qtdemux ! h264parse ! " in camera.source and camera.reconnect_attempts == 0
        source = open_source(camera, base_dir=rig.base_dir)  # built, not opened: this machine has no NVDEC
        assert isinstance(source, CaptureSource) and source.spec.gstreamer
        assert source.target == camera.source.removeprefix("gst://")


def test_the_commented_rtsp_cameras_parse_once_uncommented():
    text = EXAMPLE.read_text()
    block = text[text.index("# [[cameras]]"):]
    uncommented = "\n".join(re.sub(r"^# ?", "", line) for line in block.splitlines())
    rig = parse_rig(uncommented, source="rtsp block")
    assert rig.camera_names == ["rear_left", "rear_right"]
    for camera in rig.cameras:
        assert "rtspsrc location=rtsp://CAMERA_ADDRESS:554/stream latency=100 ! rtph264depay ! h264parse ! " in camera.source
        assert DECODE in camera.source and camera.reconnect_attempts == 0


def test_no_network_address_outside_comments():
    """Addresses are placeholders, and only in comments: nothing a test runs points at a real host."""
    for line in EXAMPLE.read_text().splitlines():
        if not line.lstrip().startswith("#"):
            assert "rtsp://" not in line and not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", line), line
