"""Reading back the JSONL a run wrote (``vitdeploy.runtime.sinks.set_record``, one line per set).

``detection_view`` is the part of a line that says what the model found: the set index, each
camera's name, whether it was missing, its frame index and its results. It is what "the same
answer" means when a replay on Ray is compared with `vitdeploy run` in one process; the rest of a
line (capture times, stage timestamps, latencies, deadline misses, health) is when and how fast it
happened, which differs from run to run by nature.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from vitdeploy.errors import DataError

#: The fields of a camera entry that ``detection_view`` keeps.
CAMERA_FIELDS = ("name", "missing", "frame", "results")


def read_records(path: Path) -> Iterator[dict]:
    """The lines of a run's JSONL, parsed, in order."""
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{n}: not a JSON line ({exc.msg}); was the run interrupted?") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc


def detection_view(record: dict) -> dict:
    """What the model found in one set (see the module docstring)."""
    view = {"set": record["set"], "missing": record["missing"],
            "cameras": [{k: c[k] for k in CAMERA_FIELDS} for c in record["cameras"]]}
    if "results" in record:  # a rig-level head's answer for the whole set
        view["results"] = record["results"]
    return view


def detection_views(path: Path) -> list[dict]:
    """``detection_view`` of every line of ``path``."""
    return [detection_view(r) for r in read_records(path)]


def camera_frames(records: Iterable[dict]) -> dict[tuple[str, int], list[dict]]:
    """(camera, frame index) -> the results records of every camera frame that was present in a set
    (read as they come: a long drive's lines are not all held at once)."""
    out = {}
    for record in records:
        for cam in record["cameras"]:
            if not cam["missing"] and cam["frame"] is not None:
                out[(cam["name"], int(cam["frame"]))] = cam["results"]
    return out
