"""Camera sources, chosen by URI: each runs in its own thread into a small newest-frame buffer.

===============================================  =============================================
URI                                              source
===============================================  =============================================
``synthetic://front?size=256x448&seed=0``        rendered synthetic camera (see ``synthetic``)
``videos/front.mp4`` or ``file:///abs/front.mp4``  video file (``loop`` from the camera config)
``frames/front/`` (a folder)                     image sequence, name order
``device://0`` or ``0``                          local camera by index (OpenCV)
``rtsp://host/stream``, ``http(s)://...``        network stream (OpenCV / FFmpeg)
``gst://v4l2src ! videoconvert ! appsink``       GStreamer pipeline (OpenCV built with GStreamer;
                                                 a string with `` ! `` needs no ``gst://``)
``drive.mcap#/cam_front/image_raw/compressed``   one image topic of an MCAP file, a ``.db3`` file or
                                                 a ROS 2 bag folder (``#TOPIC`` or the camera's
                                                 ``topic``; none: the only image topic there is)
===============================================  =============================================
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from vitdeploy.errors import RigConfigError
from vitdeploy.runtime.rig import Camera
from vitdeploy.runtime.sources.base import Clock, Frame, FrameError, Health, Source, SourceStatus

__all__ = ["Clock", "Frame", "FrameError", "Health", "Source", "SourceStatus", "decoder_threads", "open_source"]

_STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")


def decoder_threads(setting: int, cameras: int) -> int:
    """FFmpeg threads per decoding camera: ``setting`` (a rig's ``decoder_threads``), or for 0 the
    usable cores shared out among ``cameras``, at least one each. The cameras already decode in
    parallel, one thread each; frame threads on top of that only cost when cores are few."""
    from vitdeploy.runtime.machine import usable_cores

    return setting if setting > 0 else max(1, usable_cores() // max(1, cameras))


def open_source(camera: Camera, *, paced: bool = True, base_dir: str | Path = ".",
                channel_order: str = "RGB", threads: int | None = None) -> Source:
    """The source for ``camera.source`` (not started). ``paced`` False makes file and synthetic
    sources deliver as fast as they are consumed (free-running rigs); relative paths are resolved
    against ``base_dir`` (the rig file's folder). ``channel_order`` BGR asks decoders for their own
    BGR frames (a fused graph that takes BGR); a source that renders RGB delivers RGB anyway.
    ``threads``: FFmpeg's threads for a video file or network stream (None: OpenCV's choice)."""
    uri = camera.source.strip()
    common = {"fps": camera.fps, "paced": paced, "reconnect_interval_s": camera.reconnect_interval_s,
              "reconnect_attempts": camera.reconnect_attempts, "channel_order": channel_order}
    parts = urlsplit(uri)
    scheme = parts.scheme.lower() if len(parts.scheme) > 1 else ""  # "C:" is a drive, not a scheme
    if scheme == "synthetic":
        from vitdeploy.runtime.sources.synthetic import SyntheticSource

        query = _query(camera, parts.query, {"size", "seed", "fps", "loop"})
        view: str | int = parts.netloc or parts.path.strip("/")
        if not view:
            raise RigConfigError(f"camera {camera.name!r}: {uri!r} names no camera; e.g. synthetic://front")
        if isinstance(view, str) and view.isdigit():
            view = int(view)
        size = _size(camera, query["size"]) if "size" in query else (camera.resolution or (256, 448))
        if "fps" in query:
            common["fps"] = _number(camera, "fps", query["fps"], positive=True)
        return SyntheticSource(camera.name, view=view, size=size, seed=int(_number(camera, "seed", query.get("seed", "0"))),
                               loop=int(_number(camera, "loop", query.get("loop", "0"))), **common)
    if scheme in _STREAM_SCHEMES:
        from vitdeploy.runtime.sources.video import CaptureSource

        return CaptureSource(camera.name, uri, resolution=camera.resolution, timeout_s=camera.timeout_s,
                             threads=threads, **common)
    if scheme in ("gst", "gstreamer") or (not scheme and " ! " in uri):
        from vitdeploy.runtime.sources.video import CaptureSource

        pipeline = uri.split("://", 1)[1] if scheme else uri
        return CaptureSource(camera.name, pipeline, resolution=camera.resolution, gstreamer=True,
                             timeout_s=camera.timeout_s, **common)
    if scheme == "device" or uri.isdigit():
        from vitdeploy.runtime.sources.video import CaptureSource

        index = parts.netloc or parts.path.strip("/") if scheme else uri
        if not str(index).isdigit():
            raise RigConfigError(f"camera {camera.name!r}: {uri!r} is not device://INDEX, e.g. device://0")
        return CaptureSource(camera.name, int(index), resolution=camera.resolution, timeout_s=camera.timeout_s,
                             **common)  # a device is raw frames (V4L2), not FFmpeg: no decoder threads
    if scheme not in ("", "file"):
        raise RigConfigError(f"camera {camera.name!r}: unknown source scheme {scheme!r} in {uri!r}; use a file or "
                             "folder path, synthetic://, device://, rtsp://, http(s):// or gst://")
    path = _local_path(parts.path if scheme == "file" else uri, base_dir)
    recording = _recording_path(parts.path if scheme == "file" else uri.split("#", 1)[0], base_dir)
    if recording is not None:
        from vitdeploy.runtime.sources.recording import RecordingSource

        if camera.loop:
            raise RigConfigError(f"camera {camera.name!r}: a recording plays once; remove loop = true")
        topic = camera.topic or parts.fragment or None
        if camera.topic and parts.fragment and camera.topic != parts.fragment:
            raise RigConfigError(f"camera {camera.name!r}: topic {camera.topic!r} and {uri!r} name different topics")
        return RecordingSource(camera.name, recording, topic=topic, **common)
    if camera.topic:
        raise RigConfigError(f"camera {camera.name!r}: topic is for recordings (.mcap, .db3, a ROS 2 bag folder); "
                             f"{uri!r} is not one")
    if path.is_dir():
        from vitdeploy.runtime.sources.images import ImageFolderSource

        return ImageFolderSource(camera.name, path, loop=camera.loop, **common)
    from vitdeploy.runtime.sources.video import VideoFileSource

    return VideoFileSource(camera.name, path, loop=camera.loop, threads=threads, **common)


def _local_path(text: str, base_dir: str | Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def _recording_path(text: str, base_dir: str | Path) -> Path | None:
    """The recording ``text`` names (before any ``#TOPIC``), or None when it is no recording."""
    from vitdeploy.runtime.sources.recording import is_recording

    path = _local_path(text, base_dir)
    return path if is_recording(path) else None


def _query(camera: Camera, query: str, known: set[str]) -> dict[str, str]:
    values = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RigConfigError(f"camera {camera.name!r}: unknown parameter {unknown[0]!r} in {camera.source!r}; "
                             f"known: {', '.join(sorted(known))}")
    return values


def _number(camera: Camera, key: str, value: str, *, positive: bool = False) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number >= 0 or (positive and number == 0):
        raise RigConfigError(f"camera {camera.name!r}: {key}={value!r} in {camera.source!r} is not a "
                             f"{'positive' if positive else 'non-negative'} number")
    return number


def _size(camera: Camera, value: str) -> tuple[int, int]:
    h, _, w = value.lower().partition("x")
    if not (h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0):
        raise RigConfigError(f"camera {camera.name!r}: size={value!r} in {camera.source!r} is not HEIGHTxWIDTH "
                             "in pixels, e.g. 256x448")
    return int(h), int(w)
