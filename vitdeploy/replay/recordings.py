"""The unit of replay: one recording of a drive, with one source per camera, found from ``--data``.

A recording is what one multi-camera run replays from start to end:

==========================  ===================================================================
on disk                     recording
==========================  ===================================================================
``drive.mp4``               a single video: one camera, named after the file
``frames/`` (images)        an image sequence: one camera, the images in name order
``drive/`` (per camera)     a folder of per-camera videos or image folders: ``front.mp4``,
                            ``left/``, ... one camera each, in name order
``set/annotations.json``    a COCO set (``vitdeploy data synth`` writes one): one camera, the
                            images in the file's order, with its labels as ground truth
``drive.mcap``, bag folder  an MCAP file or ROS 2 bag (or ``.db3``), one camera per image
                            topic, synchronised by the recorded stamps
==========================  ===================================================================

``--data`` names recordings as a glob (each match is one), a text file listing paths or
``file://`` URIs one a line (``#`` comments; relative to the file's folder), a folder (each entry
in it is one recording, unless the folder is a recording that cannot hold others: a COCO set, a
bag, an image sequence) or a single file.
"""

from __future__ import annotations

import enum
import glob
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from vitdeploy.data.frames import IMAGE_SUFFIXES, is_image
from vitdeploy.errors import DataError

#: Video files a recording may be (what OpenCV's FFmpeg backend reads).
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts")
#: Recordings in the formats of ``vitdeploy.data.recordings``.
RECORDING_SUFFIXES = (".mcap", ".db3")
#: Text files that list recordings, one path or URI a line.
LIST_SUFFIXES = (".txt", ".list", ".lst")
#: Frame rate given to cameras whose files do not say (it only names the video sink's rate).
DEFAULT_FPS = 10.0


class RecordingKind(str, enum.Enum):
    VIDEO = "video"  # one video file, one camera
    IMAGES = "images"  # one folder of images, one camera
    CAMERAS = "cameras"  # a folder of per-camera videos / image folders
    COCO = "coco"  # a labelled COCO set, one camera
    RECORDING = "recording"  # an MCAP file or a ROS 2 bag, one camera per image topic


@dataclass(frozen=True)
class RecordedCamera:
    """One camera of a recording: its name in the rig and the source URI `vitdeploy run` opens."""

    name: str
    source: str


@dataclass(frozen=True)
class Recording:
    """One recording: ``id`` names its output folder (unique within one replay), ``path`` the file
    or folder (absolute), ``cameras`` its cameras in rig order (a COCO set's one camera is read by
    replay's own source; MCAP files and bags list none until their topics are read)."""

    id: str
    path: Path
    kind: RecordingKind
    cameras: tuple[RecordedCamera, ...] = ()

    @property
    def labelled(self) -> bool:
        """Whether the recording carries ground-truth labels (COCO sets)."""
        return self.kind is RecordingKind.COCO

    def fingerprint(self) -> dict[str, list[int]]:
        """Size and modification time (ns) of every file the recording reads: a changed recording
        is replayed again."""
        files = [self.path] if self.path.is_file() else sorted(p for p in self.path.rglob("*") if p.is_file())
        out = {}
        for f in files:
            st = f.stat()
            out[str(f.relative_to(self.path) if f != self.path else f.name)] = [st.st_size, st.st_mtime_ns]
        return out

    def to_dict(self) -> dict:
        return {"id": self.id, "path": str(self.path), "kind": self.kind.value,
                "cameras": [{"name": c.name, "source": c.source} for c in self.cameras]}


def find_recordings(data: str | Path | Iterable[str | Path]) -> list[Recording]:
    """The recordings ``data`` names (see the module docstring), in order, each once; ids are the
    file or folder names, made unique with a short hash of the path where two are alike. A name
    that matches nothing, or a file of no known kind, is a ``DataError``."""
    specs = [data] if isinstance(data, (str, Path)) else list(data)
    paths: list[Path] = []
    for spec in specs:
        paths += _expand(str(spec))
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    if not unique:
        raise DataError(f"--data {', '.join(str(s) for s in specs)}: no recordings found")
    recordings = [classify(p) for p in unique]
    stems = [r.id for r in recordings]
    return [r if stems.count(r.id) == 1 else _with_id(r, f"{r.id}-{_short_hash(r.path)}") for r in recordings]


def classify(path: Path) -> Recording:
    """The recording at ``path`` (a file or folder, absolute); a ``DataError`` says what it is not."""
    stem = _safe_id(path.stem if path.is_file() else path.name)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return Recording(stem, path, RecordingKind.VIDEO, (RecordedCamera(stem, str(path)),))
        if suffix in RECORDING_SUFFIXES:
            return Recording(stem, path, RecordingKind.RECORDING)
        if suffix == ".json":
            return Recording(stem, path, RecordingKind.COCO, (RecordedCamera(stem, str(path)),))
        raise DataError(f"{path} is no recording vitdeploy replays: expected a video ({', '.join(VIDEO_SUFFIXES)}), "
                        f"an MCAP/bag file ({', '.join(RECORDING_SUFFIXES)}), a COCO file or a folder")
    if not path.is_dir():
        raise DataError(f"recording {path} does not exist")
    if (path / "annotations.json").is_file():
        return Recording(stem, path, RecordingKind.COCO, (RecordedCamera(stem, str(path)),))
    if (path / "metadata.yaml").is_file():
        return Recording(stem, path, RecordingKind.RECORDING)
    if any(is_image(p) for p in path.iterdir()):
        return Recording(stem, path, RecordingKind.IMAGES, (RecordedCamera(stem, str(path)),))
    cameras = tuple(RecordedCamera(_safe_id(p.stem if p.is_file() else p.name), str(p))
                    for p in sorted(path.iterdir()) if _camera_entry(p))
    if not cameras:
        raise DataError(f"{path} holds no recording: expected images ({', '.join(IMAGE_SUFFIXES)}), per-camera "
                        "videos or image folders, an annotations.json (COCO) or a ROS 2 bag's metadata.yaml")
    return Recording(stem, path, RecordingKind.CAMERAS, cameras)


def _camera_entry(p: Path) -> bool:
    if p.name.startswith("."):
        return False
    if p.is_file():
        return p.suffix.lower() in VIDEO_SUFFIXES
    return p.is_dir() and any(is_image(q) for q in p.iterdir())


def _expand(spec: str) -> list[Path]:
    """The paths one ``--data`` value names."""
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
        if not matches:
            raise DataError(f"--data {spec!r} matches no file or folder")
        return matches
    path = _local_path(spec, base=Path("."))
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        return _listed(path)
    if not path.exists():
        raise DataError(f"--data {spec}: no such file or folder; give a glob, a folder, a file or a list file "
                        f"({', '.join(LIST_SUFFIXES)})")
    if path.is_dir():
        kind = _kind_or_none(path)
        if kind in (None, RecordingKind.CAMERAS):
            # a folder of recordings: each entry is one (name one multi-camera folder with a glob or a list)
            entries = [p for p in sorted(path.iterdir()) if not p.name.startswith(".") and _kind_or_none(p)]
            if entries or kind is None:
                if not entries:
                    raise DataError(f"--data {spec}: the folder holds no recordings (videos, image folders, "
                                    "per-camera folders, COCO sets, MCAP files or bags)")
                return entries
    return [path]


def _kind_or_none(p: Path) -> RecordingKind | None:
    try:
        return classify(p.resolve()).kind
    except DataError:
        return None


def _listed(path: Path) -> list[Path]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            out.append(_local_path(text, base=path.parent))
        except DataError as exc:
            raise DataError(f"{path}:{n}: {exc}") from None
    if not out:
        raise DataError(f"{path} lists no recordings; write one path or file:// URI a line")
    return out


def _local_path(text: str, *, base: Path) -> Path:
    parts = urlsplit(text)
    scheme = parts.scheme.lower() if len(parts.scheme) > 1 else ""
    if scheme not in ("", "file"):
        raise DataError(f"{text!r}: only local paths and file:// URIs are replayed; copy or mount {scheme}:// "
                        "data where every Ray worker sees it at the same path")
    path = Path(unquote(parts.path) if scheme == "file" else text).expanduser()
    return path if path.is_absolute() else base / path


def _safe_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "recording"


def _short_hash(path: Path) -> str:
    return hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:8]


def _with_id(recording: Recording, new_id: str) -> Recording:
    return Recording(new_id, recording.path, recording.kind, recording.cameras)
