"""Which OpenCV the runtime gets, where it comes from, and whether it can decode video in hardware.

vitdeploy depends on no OpenCV wheel (``vitdeploy/extras.py``): on a Jetson the one to use is
JetPack's, built with GStreamer, so that a rig can decode with ``nvv4l2decoder``. pip's
``opencv-python-headless`` has no GStreamer and, installed into a venv that also sees the system's
packages, shadows JetPack's. This module says which copy Python imports, what its build supports
(``cv2.getBuildInformation()``'s "Video I/O" section) and which other copies it hides.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vitdeploy.extras import Extra, install_command, installed


@dataclass(frozen=True)
class OpenCvFacts:
    """``version`` None: no cv2 here (``note`` says how to get one). ``source``: the pip
    distribution that installed it, or "system" (JetPack's python3-opencv, a source build).
    ``video_io``: backend -> "YES (1.20.3)" / "NO" as the build information says; ``shadowed``:
    other cv2 copies on the path that Python does not import."""

    version: str | None
    path: str | None = None
    source: str | None = None
    gstreamer: bool | None = None
    video_io: dict[str, str] = field(default_factory=dict)
    shadowed: list[str] = field(default_factory=list)
    note: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_video_io(build_information: str) -> dict[str, str]:
    """The "Video I/O:" section of ``cv2.getBuildInformation()``: backend -> its value, for the
    section's top-level entries ("GStreamer" -> "YES (1.20.3)", "FFMPEG" -> "YES"; avcodec and the
    other FFMPEG sub-entries, indented deeper, are left out)."""
    out: dict[str, str] = {}
    indent = None
    in_section = False
    for line in build_information.splitlines():
        stripped = line.lstrip(" -")  # cmake's configure log prefixes "--"
        if not in_section:
            in_section = stripped.startswith("Video I/O:")
            continue
        if not stripped.strip():
            if out:
                break
            continue
        depth = len(line) - len(stripped)
        indent = depth if indent is None else indent
        if depth < indent:
            break
        m = re.match(r"([^:]+):\s*(.*)$", stripped)
        if depth == indent and m:
            out[m.group(1).strip()] = m.group(2).strip()
    return out


def has_gstreamer(video_io: dict[str, str]) -> bool:
    return any(k.lower() == "gstreamer" and v.upper().startswith("YES") for k, v in video_io.items())


def cv2_copies(paths: Iterable[str]) -> list[Path]:
    """Every cv2 on ``paths`` (``sys.path`` order: the first is the one imported): a cv2 package
    folder or a cv2*.so extension module."""
    found = []
    for entry in paths:
        folder = Path(entry or ".")
        if (folder / "cv2" / "__init__.py").is_file():
            found.append(folder / "cv2")
        elif folder.is_dir():
            found += sorted(folder.glob("cv2*.so"))
    return found


def _distribution() -> str:
    dists = importlib.metadata.packages_distributions().get("cv2", [])
    return f"pip: {', '.join(sorted(set(dists)))}" if dists else "system"


def probe_opencv() -> OpenCvFacts:
    """The OpenCV this process imports; imports cv2 only where it is installed."""
    if not installed("cv2"):
        return OpenCvFacts(version=None, note=f"no OpenCV (cv2); {install_command([Extra.OPENCV])}")
    import cv2

    video_io = parse_video_io(cv2.getBuildInformation())
    here = Path(cv2.__file__).resolve().parent
    others = [str(p) for p in cv2_copies(sys.path) if p.resolve() != here and here not in p.resolve().parents]
    return OpenCvFacts(version=cv2.__version__, path=str(here), source=_distribution(),
                       gstreamer=has_gstreamer(video_io), video_io=video_io, shadowed=others)
