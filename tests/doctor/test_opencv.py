"""Which OpenCV the runtime gets, and whether it can decode with GStreamer."""

from recorded import BUILD_INFO_GSTREAMER, BUILD_INFO_WHEEL

from vitdeploy.doctor.opencv import cv2_copies, has_gstreamer, parse_video_io, probe_opencv


def test_video_io_of_a_jetpack_style_build():
    video_io = parse_video_io(BUILD_INFO_GSTREAMER)
    assert video_io == {"DC1394": "NO", "FFMPEG": "NO", "GStreamer": "YES (1.20.3)", "v4l/v4l2": "YES (linux/videodev2.h)"}
    assert has_gstreamer(video_io)


def test_video_io_of_the_pip_wheel():
    video_io = parse_video_io(BUILD_INFO_WHEEL)
    assert video_io["GStreamer"] == "NO" and video_io["FFMPEG"] == "YES" and "avcodec" not in video_io
    assert not has_gstreamer(video_io)


def test_cmake_configure_log_prefixes_are_read_too():
    log = "--   Video I/O:\n--     GStreamer:                   YES (1.20.3)\n--     v4l/v4l2:   YES\n-- \n"
    assert has_gstreamer(parse_video_io(log))


def test_no_video_section_is_no_gstreamer():
    assert parse_video_io("General configuration for OpenCV 4.8.0\n") == {}


def test_copies_on_the_path_in_import_order(tmp_path):
    venv, system, old = tmp_path / "venv-site", tmp_path / "dist-packages", tmp_path / "py3"
    (venv / "cv2").mkdir(parents=True)
    (venv / "cv2" / "__init__.py").write_text("")
    (system / "cv2").mkdir(parents=True)
    (system / "cv2" / "__init__.py").write_text("")
    old.mkdir()
    (old / "cv2.cpython-38-aarch64-linux-gnu.so").write_bytes(b"")
    found = cv2_copies([str(venv), str(tmp_path / "missing"), str(system), str(old)])
    assert found == [venv / "cv2", system / "cv2", old / "cv2.cpython-38-aarch64-linux-gnu.so"]


def test_the_imported_opencv(hide):
    facts = probe_opencv()
    import cv2

    assert facts.version == cv2.__version__ and facts.source  # "pip: opencv-python-headless" here
    assert facts.gstreamer is has_gstreamer(parse_video_io(cv2.getBuildInformation()))
    hide("cv2")
    missing = probe_opencv()
    assert missing.version is None and 'vitdeploy[opencv]' in missing.note and "python3-opencv" in missing.note
