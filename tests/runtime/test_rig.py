"""Rig files: the documented example parses; a malformed one names the line or field."""

from pathlib import Path

import pytest

from vitdeploy.bundle import Precision
from vitdeploy.errors import RigConfigError
from vitdeploy.runtime.rig import VideoMode, load_rig, parse_rig, synthetic_rig

EXAMPLE = Path(__file__).parents[2] / "docs" / "rig.example.toml"

GOOD = """
rate_hz = 10
[[cameras]]
name = "a"
source = "synthetic://front"
fps = 10
[[cameras]]
name = "b"
source = "synthetic://rear"
fps = 10
[[cameras]]
name = "c"
source = "synthetic://rear_left"
fps = {fps}
"""


def test_the_documented_example_parses():
    rig = load_rig(EXAMPLE)
    assert rig.camera_names == ["front", "front_left", "front_right", "rear"]
    assert rig.cameras[3].loop and rig.startup_timeout_s == 2.0 and rig.decoder_threads == 0
    assert rig.model.backend == "onnxruntime" and rig.model.precision is Precision.FP32
    assert rig.outputs.video is VideoMode.MOSAIC and rig.sync_tolerance_ms == 40
    assert rig.base_dir == EXAMPLE.parent.resolve()
    # the network camera is shown commented out, as a parsable example
    commented = "\n".join(line[2:] for line in EXAMPLE.read_text().splitlines() if line.startswith("# "))
    dash = parse_rig(commented[commented.index("[[cameras]]"):])
    assert dash.cameras[0].resolution == (720, 1280) and dash.cameras[0].timeout_s == 5.0


def test_the_documented_example_has_no_active_network_camera_or_private_address():
    import re

    active = [line.split("#")[0] for line in EXAMPLE.read_text().splitlines()]
    private = re.compile(r"\b(10|127|192\.168|172\.(1[6-9]|2\d|3[01]))\.\d+\.\d+")
    assert not [line for line in active if private.search(line)]  # before: an rtsp:// camera at a private address
    assert all(c.source.startswith("synthetic://") or c.source.endswith(".mp4") for c in load_rig(EXAMPLE).cameras)


def test_the_documented_example_runs_as_it_is(invoke, bundle, tmp_path):
    """As its header says: make the video it names, then run it (with a small test bundle)."""
    import shutil

    from vitdeploy.data.video import write_videos

    text = EXAMPLE.read_text()
    assert "#   vitdeploy data video --out runs/example/media --frames 100 --cameras 6" in text
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(EXAMPLE, docs / EXAMPLE.name)
    rig = load_rig(docs / EXAMPLE.name)
    rear = rig.base_dir / rig.cameras[3].source
    assert rear == tmp_path / "docs" / ".." / "runs" / "example" / "media" / "rear.mp4"
    write_videos(tmp_path / "runs" / "example" / "media", frames=10, cameras=6, size=(64, 96))  # the command, smaller
    r = invoke("run", bundle.path, "--rig", docs / EXAMPLE.name, "--max-frames", "5", "--no-live")
    assert r.exit_code == 0, r.output  # before: a camera at a private address, and a video nobody made
    assert (tmp_path / "runs" / "example" / "frames.jsonl").read_text().count("\n") == 5
    assert (tmp_path / "runs" / "example" / "mosaic.mp4").is_file()


def test_a_field_error_names_the_field():
    with pytest.raises(RigConfigError, match=r'cameras\[2\]\.fps: expected a positive number, got "abc"'):
        parse_rig(GOOD.format(fps='"abc"'))
    with pytest.raises(RigConfigError, match=r"cameras\[2\]\.fps: expected a positive number, got -1"):
        parse_rig(GOOD.format(fps="-1"))


def test_a_syntax_error_names_the_line():
    with pytest.raises(RigConfigError, match=r"at line 5, column 10"):
        parse_rig(GOOD.format(fps=10).replace('source = "synthetic://front"', "source = synthetic://front"))


@pytest.mark.parametrize(("edit", "message"), [
    (("rate_hz = 10", "rate_hz = 10\nfsp = 3"), "unknown key 'fsp'"),
    (('name = "b"', 'name = "a"'), "camera names must be unique; repeated: a"),
    (("rate_hz = 10", 'rate_hz = 10\n[outputs]\nvideo = "gif"'), "outputs.video: expected one of none, per-camera, mosaic"),
    (("rate_hz = 10", '[model]\nbackend = "tvm"'), "model.backend: expected one of onnxruntime, torch, tensorrt"),
    (('name = "b"\n', ""), r"cameras\[1\]\.name: missing"),
    (("rate_hz = 10", "rate_hz = 10\ndecoder_threads = 1.5"), "decoder_threads: expected an integer >= 0"),
    (("rate_hz = 10", "rate_hz = 10\ndecoder_threads = -1"), "decoder_threads: expected an integer >= 0"),
])
def test_other_field_errors(edit, message):
    with pytest.raises(RigConfigError, match=message):
        parse_rig(GOOD.format(fps=10).replace(*edit))


def test_synthetic_rig_needs_no_file():
    rig = synthetic_rig(3, fps=5, size=(64, 96), loop=2)
    assert rig.camera_names == ["front", "front_left", "front_right"]
    assert rig.rate_hz == 5 and rig.cameras[0].source == "synthetic://front?size=64x96&seed=0&loop=2"


def test_cli_malformed_rig_is_one_line_exit_1(invoke, tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text(GOOD.format(fps='"abc"'))
    r = invoke("run", str(tmp_path / "bundle"), "--rig", str(rig), "--no-live")
    assert r.exit_code == 1
    assert 'cameras[2].fps: expected a positive number, got "abc"' in r.output
    assert "Traceback" not in r.output


def test_decoders_get_the_cores_shared_out_among_the_cameras(monkeypatch):
    from vitdeploy.runtime.rig import Camera
    from vitdeploy.runtime.sources import decoder_threads, open_source

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert [decoder_threads(0, n) for n in (1, 3, 6, 12)] == [8, 2, 1, 1]
    assert decoder_threads(3, 6) == 3  # the rig file's decoder_threads, as it is
    assert parse_rig(GOOD.format(fps=10).replace("rate_hz = 10", "rate_hz = 10\ndecoder_threads = 2")).decoder_threads == 2
    video = open_source(Camera(name="a", source="a.mp4", fps=10), threads=2)
    assert video.threads == 2
    stream = open_source(Camera(name="b", source="rtsp://127.0.0.1:9/x", fps=10), threads=2)
    device = open_source(Camera(name="c", source="device://0", fps=10), threads=2)
    assert stream.spec.threads == 2 and device.spec.threads is None  # a device is not decoded by FFmpeg
