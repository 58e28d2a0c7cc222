"""The rig file: which cameras, which model, how strict the timing, where the results go.

A rig is written in TOML (``docs/rig.example.toml`` is a commented example) and read into typed,
frozen dataclasses. A malformed file is a ``RigConfigError`` that names the line (TOML syntax) or
the field (``cameras[2].fps: expected a positive number, got 'abc'``). Relative paths in the file
(bundle, video files, image folders, the output folder) are relative to the rig file's folder.

Why this is long: every table of the file (cameras with their recordings and geometry, model,
outputs) and the one typed reader (``_Fields``) whose errors name the field stay together, so a new
key cannot be added without being checked and named in the error.
"""

from __future__ import annotations

import enum
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitdeploy.bundle.manifest import Precision
from vitdeploy.data.geometry import CameraGeometry
from vitdeploy.errors import DataError, RigConfigError
from vitdeploy.runtime.backends import BACKEND_KINDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # JetPack 6 runs Python 3.10: tomli is the same parser (a core dependency there)
    import tomli as tomllib


class GeometrySource(str, enum.Enum):
    """Where a rig-level model's camera geometry comes from."""

    RIG = "rig"  # each camera's [cameras.geometry]; a camera without one is an error
    EXPORTED = "exported"  # a camera without [cameras.geometry] takes the bundle's recorded (synthetic rig) one


class VideoMode(str, enum.Enum):
    NONE = "none"
    PER_CAMERA = "per-camera"  # one annotated mp4 per camera
    MOSAIC = "mosaic"  # all cameras tiled into one mp4


@dataclass(frozen=True)
class Camera:
    """One camera of the rig.

    ``source`` is a URI (see ``vitdeploy.runtime.sources.open_source``); ``fps`` the rate it is
    expected to deliver, frames per second; ``resolution`` (H, W) pixels is requested from live
    captures and used by synthetic cameras (None: the source's own size). ``loop`` replays video
    files and image folders; live captures that fail are reopened every ``reconnect_interval_s``
    seconds, at most ``reconnect_attempts`` times in a row (0: forever). A live capture that takes
    longer than ``timeout_s`` seconds to open, or to deliver its next frame, is given up and
    reopened. ``topic`` names the image topic of a recording source (an MCAP file or ROS 2 bag;
    ``fps`` is then only the expected rate: frames play on the recording's own stamps).
    ``geometry``: the camera's calibration (``[cameras.geometry]``: intrinsics and where it
    sits on the car, the frames of ``vitdeploy.data.geometry``), which a rig-level model needs.
    """

    name: str
    source: str
    fps: float
    resolution: tuple[int, int] | None = None
    topic: str | None = None
    geometry: CameraGeometry | None = None
    loop: bool = False
    reconnect_interval_s: float = 1.0
    reconnect_attempts: int = 0
    timeout_s: float = 5.0


@dataclass(frozen=True)
class ModelConfig:
    """The bundle and how to run it. ``score_threshold`` (0..1) and ``top_k`` filter detections."""

    bundle: Path | None = None
    backend: str = "onnxruntime"
    precision: Precision = Precision.FP32
    device: str | None = None  # None: the backend's default (see open_backend)
    score_threshold: float = 0.3
    top_k: int = 100
    #: bundles with preprocessing fused into the graph take raw frames of one size; True resizes
    #: other sizes on the CPU instead of refusing them
    allow_cpu_resize: bool = False
    #: run a graph that `calibrate --min-agreement` rejected (recorded in the run summary)
    allow_rejected: bool = False
    #: rig-level models: where the camera geometry comes from (the rig file's, by default)
    geometry: GeometrySource = GeometrySource.RIG


@dataclass(frozen=True)
class Outputs:
    """Where results go: ``dir`` (None: the caller's ``out``), a JSON Lines file name in it (None:
    no JSONL), annotated video, the live terminal view, and an MCAP file of the results for
    Foxglove (``mcap``: a file name in ``dir``, or a path; ``mcap_images`` stores the frames in it too)."""

    dir: Path | None = None
    jsonl: str | None = "frames.jsonl"
    video: VideoMode = VideoMode.NONE
    live: bool = True
    mcap: str | None = None
    mcap_images: bool = False


@dataclass(frozen=True)
class Rig:
    """A camera rig and its timing.

    ``rate_hz`` is frame sets per second (0: free-running — each set is assembled as soon as the
    pipeline can take it and file/synthetic cameras deliver as fast as they are consumed; for
    offline runs and benchmarks). ``sync_tolerance_ms`` is how far apart in capture time the
    cameras of one set may be, and how long a set waits for a late camera. ``latency_budget_ms`` is
    the end-to-end deadline (capture to results) that the summary counts misses against.
    ``startup_timeout_s`` is how long the first set waits for every camera's first frame; then the
    rig runs with the cameras it has. ``decoder_threads`` is FFmpeg's threads per video file or
    capture (0: the machine's cores shared out among the cameras, at least one each — six 1080p
    decoders with two threads each on two cores decoded 7-10 % fewer frames than with one).
    """

    cameras: tuple[Camera, ...]
    model: ModelConfig = field(default_factory=ModelConfig)
    rate_hz: float = 10.0
    sync_tolerance_ms: float = 50.0
    latency_budget_ms: float = 100.0
    startup_timeout_s: float = 2.0
    decoder_threads: int = 0
    outputs: Outputs = field(default_factory=Outputs)
    base_dir: Path = Path(".")  # folder relative paths in the file are resolved against

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]


# ---- reading ----------------------------------------------------------------------------------

_TOP_KEYS = {"rate_hz", "sync_tolerance_ms", "latency_budget_ms", "startup_timeout_s", "decoder_threads", "model",
             "outputs", "cameras"}
_MODEL_KEYS = {"bundle", "backend", "precision", "device", "score_threshold", "top_k", "allow_cpu_resize",
               "allow_rejected", "geometry"}
_OUTPUT_KEYS = {"dir", "jsonl", "video", "live", "mcap", "mcap_images"}
_CAMERA_KEYS = {"name", "source", "fps", "resolution", "loop", "reconnect_interval_s", "reconnect_attempts",
                "timeout_s", "topic", "geometry"}
_GEOMETRY_KEYS = {"image_size", "fx", "fy", "cx", "cy", "position", "yaw_deg", "pitch_deg", "roll_deg", "cam_to_ego"}
_MOUNT_KEYS = ("position", "yaw_deg", "pitch_deg", "roll_deg")


def load_rig(path: str | Path) -> Rig:
    """Read a rig TOML file; relative paths in it are taken relative to its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RigConfigError(f"rig file {path} does not exist; see docs/rig.example.toml for one") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RigConfigError(f"cannot read rig file {path}: {exc}") from exc
    return parse_rig(text, source=str(path), base_dir=path.resolve().parent)


def parse_rig(text: str, *, source: str = "rig.toml", base_dir: str | Path = ".") -> Rig:
    """A rig from TOML text; ``source`` names it in error messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message carries "(at line L, column C)"
        raise RigConfigError(f"{source}: not valid TOML: {exc}") from None
    f = _Fields(source)
    f.known(raw, _TOP_KEYS, "")
    cams_raw = raw.get("cameras")
    if not isinstance(cams_raw, list) or not cams_raw:
        raise RigConfigError(f"{source}: no cameras; add at least one [[cameras]] table with name, source and fps")
    cameras = tuple(_camera(f, c, i) for i, c in enumerate(cams_raw))
    names = [c.name for c in cameras]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RigConfigError(f"{source}: camera names must be unique; repeated: {', '.join(dupes)}")
    return Rig(
        cameras=cameras,
        model=_model(f, f.table(raw, "model")),
        rate_hz=f.number(raw, "rate_hz", "rate_hz", default=10.0, minimum=0.0),
        sync_tolerance_ms=f.number(raw, "sync_tolerance_ms", "sync_tolerance_ms", default=50.0, minimum=0.0),
        latency_budget_ms=f.number(raw, "latency_budget_ms", "latency_budget_ms", default=100.0, positive=True),
        startup_timeout_s=f.number(raw, "startup_timeout_s", "startup_timeout_s", default=2.0, minimum=0.0),
        decoder_threads=int(f.number(raw, "decoder_threads", "decoder_threads", default=0, minimum=0.0, integer=True)),
        outputs=_outputs(f, f.table(raw, "outputs")),
        base_dir=Path(base_dir),
    )


def _camera(f: _Fields, raw: Any, i: int) -> Camera:
    where = f"cameras[{i}]"
    if not isinstance(raw, dict):
        raise RigConfigError(f"{f.source}: {where}: expected a table with name, source and fps, got {raw!r}")
    f.known(raw, _CAMERA_KEYS, where)
    source = f.string(raw, "source", f"{where}.source", required=True)
    # a recording's frames play on their own stamps: its fps is only the expected rate
    recording = "topic" in raw or source.split("#", 1)[0].lower().endswith((".mcap", ".db3"))
    name = f.string(raw, "name", f"{where}.name", required=True)
    resolution = f.size(raw, "resolution", f"{where}.resolution")
    return Camera(
        name=name,
        source=source,
        fps=f.number(raw, "fps", f"{where}.fps", required=not recording, default=10.0, positive=True),
        resolution=resolution,
        geometry=_geometry(f, raw, f"{where}.geometry", name=name, resolution=resolution),
        loop=f.boolean(raw, "loop", f"{where}.loop", default=False),
        reconnect_interval_s=f.number(raw, "reconnect_interval_s", f"{where}.reconnect_interval_s", default=1.0,
                                      minimum=0.0),
        reconnect_attempts=int(f.number(raw, "reconnect_attempts", f"{where}.reconnect_attempts", default=0,
                                        minimum=0.0, integer=True)),
        timeout_s=f.number(raw, "timeout_s", f"{where}.timeout_s", default=5.0, positive=True),
        topic=f.string(raw, "topic", f"{where}.topic", default="") or None,
    )


def _geometry(f: _Fields, raw: dict, where: str, *, name: str,
              resolution: tuple[int, int] | None) -> CameraGeometry | None:
    """``[cameras.geometry]``: fx, fy, cx, cy (pixels of ``image_size``, default the camera's
    resolution) and either ``position`` (x, y, z metres, ego frame) with ``yaw_deg``/``pitch_deg``
    (/``roll_deg``), or ``cam_to_ego`` (4x4, camera -> ego); the conventions of
    ``vitdeploy.data.geometry``."""
    if "geometry" not in raw:
        return None
    g = raw["geometry"]
    if not isinstance(g, dict):
        raise f.fail(where, "a table with fx, fy, cx, cy and position + yaw_deg + pitch_deg (or cam_to_ego)", g)
    f.known(g, _GEOMETRY_KEYS, where)
    size = f.size(g, "image_size", f"{where}.image_size") or resolution
    if size is None:
        raise RigConfigError(f"{f.source}: {where}.image_size: missing; give [height, width] of the images fx, fy, "
                             "cx, cy are pixels of (or the camera's resolution)")
    k = {key: f.number(g, key, f"{where}.{key}", required=True, positive=key in ("fx", "fy"))
         for key in ("fx", "fy", "cx", "cy")}
    try:
        if "cam_to_ego" in g:
            if any(key in g for key in _MOUNT_KEYS):
                raise RigConfigError(f"{f.source}: {where}: give cam_to_ego or position + yaw_deg + pitch_deg "
                                     "(+ roll_deg), not both")
            intrinsics = [[k["fx"], 0.0, k["cx"]], [0.0, k["fy"], k["cy"]], [0.0, 0.0, 1.0]]
            return CameraGeometry.from_matrices(name=name, image_size=size, intrinsics=intrinsics,
                                                cam_to_ego=f.matrix(g, "cam_to_ego", f"{where}.cam_to_ego", rows=4))
        position = f.matrix(g, "position", f"{where}.position", rows=None, columns=3)
        return CameraGeometry(name=name, image_size=size, **k, position=tuple(position),
                              yaw_deg=f.number(g, "yaw_deg", f"{where}.yaw_deg", required=True),
                              pitch_deg=f.number(g, "pitch_deg", f"{where}.pitch_deg", required=True),
                              roll_deg=f.number(g, "roll_deg", f"{where}.roll_deg", default=0.0))
    except DataError as exc:
        raise RigConfigError(f"{f.source}: {where}: {exc}") from None


def _model(f: _Fields, raw: dict) -> ModelConfig:
    f.known(raw, _MODEL_KEYS, "model")
    backend = f.string(raw, "backend", "model.backend", default="onnxruntime")
    if backend not in BACKEND_KINDS:
        raise RigConfigError(f"{f.source}: model.backend: expected one of {', '.join(BACKEND_KINDS)}, got {backend!r}")
    precision = f.string(raw, "precision", "model.precision", default="fp32")
    if precision.lower() not in {p.value for p in Precision}:
        raise RigConfigError(f"{f.source}: model.precision: expected one of "
                             f"{', '.join(p.value for p in Precision)}, got {precision!r}")
    bundle = f.string(raw, "bundle", "model.bundle", default="")
    threshold = f.number(raw, "score_threshold", "model.score_threshold", default=0.3, minimum=0.0)
    if threshold > 1:
        raise RigConfigError(f"{f.source}: model.score_threshold: expected a number in 0..1, got {threshold!r}")
    return ModelConfig(
        bundle=Path(bundle) if bundle else None,
        backend=backend,
        precision=Precision(precision.lower()),
        device=f.string(raw, "device", "model.device", default="") or None,
        score_threshold=threshold,
        top_k=int(f.number(raw, "top_k", "model.top_k", default=100, positive=True, integer=True)),
        allow_cpu_resize=f.boolean(raw, "allow_cpu_resize", "model.allow_cpu_resize", default=False),
        allow_rejected=f.boolean(raw, "allow_rejected", "model.allow_rejected", default=False),
        geometry=GeometrySource(f.choice(raw, "geometry", "model.geometry", [g.value for g in GeometrySource],
                                         default=GeometrySource.RIG.value)),
    )


def _outputs(f: _Fields, raw: dict) -> Outputs:
    f.known(raw, _OUTPUT_KEYS, "outputs")
    video = f.string(raw, "video", "outputs.video", default="none")
    modes = [m.value for m in VideoMode]
    if video not in modes:
        raise RigConfigError(f"{f.source}: outputs.video: expected one of {', '.join(modes)}, got {video!r}")
    out_dir = f.string(raw, "dir", "outputs.dir", default="")
    jsonl = f.string(raw, "jsonl", "outputs.jsonl", default="frames.jsonl")
    mcap = f.string(raw, "mcap", "outputs.mcap", default="")
    if mcap and not mcap.lower().endswith(".mcap"):
        raise RigConfigError(f"{f.source}: outputs.mcap: expected a file name ending in .mcap, got {mcap!r}")
    return Outputs(dir=Path(out_dir) if out_dir else None, jsonl=jsonl or None, video=VideoMode(video),
                   live=f.boolean(raw, "live", "outputs.live", default=True), mcap=mcap or None,
                   mcap_images=f.boolean(raw, "mcap_images", "outputs.mcap_images", default=False))


class _Fields:
    """Typed reads of TOML values; every failure names the field and what would be right."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, expected: str, got: Any) -> RigConfigError:
        return RigConfigError(f"{self.source}: {where}: expected {expected}, got {_show(got)}")

    def known(self, raw: dict, keys: set[str], where: str) -> None:
        unknown = sorted(set(raw) - keys)
        if unknown:
            at = f" in {where}" if where else ""
            raise RigConfigError(f"{self.source}: unknown key {unknown[0]!r}{at}; known keys: {', '.join(sorted(keys))}")

    def table(self, raw: dict, key: str) -> dict:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"a [{key}] table", value)
        return value

    def string(self, raw: dict, key: str, where: str, *, required: bool = False, default: str = "") -> str:
        if key not in raw:
            if required:
                raise RigConfigError(f"{self.source}: {where}: missing; it is required")
            return default
        value = raw[key]
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(where, "a non-empty string" if required else "a string", value)
        return value

    def number(self, raw: dict, key: str, where: str, *, required: bool = False, default: float = 0.0,
               positive: bool = False, minimum: float | None = None, integer: bool = False) -> float:
        if key not in raw:
            if required:
                raise RigConfigError(f"{self.source}: {where}: missing; it is required")
            return default
        value = raw[key]
        kind = "an integer" if integer else "a number"
        if positive:
            kind = f"a positive {'integer' if integer else 'number'}"
        elif minimum is not None:
            kind = f"{kind} >= {minimum:g}"
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (not integer or float(value).is_integer())
        ok = ok and (not positive or value > 0) and (minimum is None or value >= minimum)
        if not ok:
            raise self.fail(where, kind, value)
        return float(value)

    def boolean(self, raw: dict, key: str, where: str, *, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(where, "true or false", value)
        return value

    def choice(self, raw: dict, key: str, where: str, choices: list[str], *, default: str) -> str:
        value = self.string(raw, key, where, default=default)
        if value not in choices:
            raise self.fail(where, f"one of {', '.join(choices)}", value)
        return value

    def matrix(self, raw: dict, key: str, where: str, *, rows: int | None, columns: int | None = None) -> list:
        """A required list of ``columns`` numbers (``rows`` None), or ``rows`` lists of ``rows`` (square)
        or ``columns`` numbers each."""
        if key not in raw:
            raise RigConfigError(f"{self.source}: {where}: missing; it is required")
        value = raw[key]
        width = columns or rows

        def numbers(row: Any) -> bool:
            return (isinstance(row, list) and len(row) == width and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row))

        ok = numbers(value) if rows is None else (isinstance(value, list) and len(value) == rows
                                                  and all(numbers(r) for r in value))
        if not ok:
            what = f"{width} numbers" if rows is None else f"{rows} rows of {width} numbers"
            raise self.fail(where, what, value)
        return [float(v) for v in value] if rows is None else [[float(v) for v in r] for r in value]

    def size(self, raw: dict, key: str, where: str) -> tuple[int, int] | None:
        if key not in raw:
            return None
        value = raw[key]
        ok = (isinstance(value, list) and len(value) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value))
        if not ok:
            raise self.fail(where, "[height, width] in pixels, e.g. [256, 448]", value)
        return int(value[0]), int(value[1])


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


# ---- building ---------------------------------------------------------------------------------

def uri_rig(sources: list[str], *, rate_hz: float, fps: float = 10.0, base_dir: str | Path = ".",
            model: ModelConfig | None = None, outputs: Outputs | None = None) -> Rig:
    """A rig from camera URIs (`vitdeploy run --camera`), each ``NAME=URI`` or ``URI``
    (``vitdeploy.runtime.sources``). A recording named without ``#TOPIC`` gives one camera per
    image topic in it (named after the topics). ``fps`` is the cameras' expected rate, ``rate_hz``
    the rig's sets per second (0: free-running)."""
    from vitdeploy.runtime.sources.recording import is_recording, recording_topics, topic_names

    cameras: list[Camera] = []
    for text in sources:
        name, sep, uri = text.partition("=")
        if not sep or "/" in name or ":" in name or "#" in name:  # no NAME=: the whole text is the URI
            name, uri = "", text
        if not uri.strip():
            raise RigConfigError(f"--camera {text!r} names no source; give NAME=URI or URI")
        path = Path(uri).expanduser()
        path = path if path.is_absolute() else Path(base_dir) / path
        if "#" not in uri and is_recording(path):
            topics = recording_topics(path)
            names = topic_names(topics) if not name or len(topics) > 1 else [name]
            cameras += [Camera(name=(f"{name}_{n}" if name and len(topics) > 1 else n), source=f"{uri}#{t}", fps=fps)
                        for n, t in zip(names, topics, strict=True)]
            continue
        if not name:
            topic = uri.partition("#")[2]
            name = topic_names([topic])[0] if topic else f"cam{len(cameras)}"
        cameras.append(Camera(name=name, source=uri, fps=fps))
    if not cameras:
        raise RigConfigError("no cameras; give --camera URI (e.g. drive.mcap, drive.mcap#/cam_front/image_raw)")
    names = [c.name for c in cameras]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RigConfigError(f"camera names must be unique; repeated: {', '.join(dupes)}; name them: --camera NAME=URI")
    return Rig(cameras=tuple(cameras), model=model or ModelConfig(), rate_hz=rate_hz, outputs=outputs or Outputs(),
               base_dir=Path(base_dir))


def synthetic_rig(cameras: int = 6, *, fps: float = 10.0, size: tuple[int, int] = (256, 448), seed: int = 0,
                  loop: int = 0, rate_hz: float | None = None, sync_tolerance_ms: float = 50.0,
                  latency_budget_ms: float = 100.0, model: ModelConfig | None = None,
                  outputs: Outputs | None = None) -> Rig:
    """A rig of the first ``cameras`` synthetic cameras (``vitdeploy.data.scenes``), no file needed,
    each with its geometry (the synthetic rig's nominal mounting).

    ``size`` is (H, W) pixels; ``loop`` > 0 renders that many ticks once and replays them (cheap
    frames for benchmarks); ``rate_hz`` defaults to ``fps`` (0: free-running).
    """
    from vitdeploy.data.rig import rig_cameras
    from vitdeploy.runtime.sources.synthetic import synthetic_camera_names

    names = synthetic_camera_names(cameras)
    h, w = size
    query = f"size={h}x{w}&seed={seed}" + (f"&loop={loop}" if loop else "")
    cams = tuple(Camera(name=n, source=f"synthetic://{n}?{query}", fps=fps, resolution=(h, w),
                        geometry=CameraGeometry.from_rig_camera(c))
                 for n, c in zip(names, rig_cameras((h, w), count=len(names)), strict=True))
    return Rig(cameras=cams, model=model or ModelConfig(), rate_hz=fps if rate_hz is None else rate_hz,
               sync_tolerance_ms=sync_tolerance_ms, latency_budget_ms=latency_budget_ms,
               outputs=outputs or Outputs())
