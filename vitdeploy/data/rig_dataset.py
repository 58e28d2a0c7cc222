"""A synthetic rig drive on disk with 3D labels (a nuScenes-like JSON), and its reader.

Layout written by :func:`write_rig_dataset`::

    out/images/<camera>/<tick:06d>.jpg   the same images as ``vitdeploy data synth`` writes
    out/boxes3d.json                     one sample per frame set: its images, each camera's
                                         geometry, and the 3D boxes in the ego frame

A sample of ``boxes3d.json``::

    {"id": 1, "frame_index": 0, "timestamp": 0.0,
     "cameras": [{"name": "front", "file": "images/front/000000.jpg", "image_size": [256, 448],
                  "fx": ..., "fy": ..., "cx": ..., "cy": ..., "position": [0, 0, 1.55],
                  "yaw_deg": 0, "pitch_deg": 4.2, "roll_deg": 0}, ...],
     "boxes": [{"category_id": 1, "category": "car", "center": [x, y, z], "size": [l, w, h],
                "yaw": 0.0, "cameras": ["front", "front_left"], "object_id": 17}, ...]}

Category ids start at 1 as in the COCO files (``category_id = class index + 1``); frames and
units are those of :mod:`vitdeploy.data.boxes3d`. The camera geometry is per sample because the
synthetic rig's pitch changes from scene to scene (vehicle load).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitdeploy.bundle.files import atomic_path
from vitdeploy.data.boxes3d import Boxes3D, render_rig_sample
from vitdeploy.data.coco import _writable_folder, _write_jpeg, read_label_file
from vitdeploy.data.geometry import CameraGeometry
from vitdeploy.data.scenes import SceneGenerator
from vitdeploy.data.world import CLASS_NAMES
from vitdeploy.errors import DataError

BOXES3D = "boxes3d.json"
FORMAT = "vitdeploy-boxes3d/1"


def write_rig_dataset(out: str | os.PathLike, *, frames: int, cameras: int = 6, size: tuple[int, int] = (256, 448),
                      seed: int = 0, stride: int = 1, fps: float = 10.0,
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Render ``frames`` frame sets (ticks 0, stride, 2*stride, ...) of ``cameras`` cameras into
    ``out`` with their 3D labels; the arguments mean what they mean for
    :func:`vitdeploy.data.coco.write_coco`. ``progress(sets_done, sets_total)`` after each set.

    Returns the path of ``boxes3d.json``, written last and atomically.
    """
    if frames < 1:
        raise DataError(f"frames={frames}: nothing to write; ask for at least 1 frame set")
    if stride < 1:
        raise DataError(f"stride={stride} must be at least 1 (1 writes every tick)")
    generator = SceneGenerator(size=size, cameras=cameras, seed=seed, fps=fps, with_masks=False)
    root = _writable_folder(Path(out))
    samples = []
    for i in range(frames):
        sample = render_rig_sample(generator, i * stride)
        cams = []
        for frame, geom in zip(sample.frames, sample.geometry, strict=True):
            rel = Path("images") / frame.camera / f"{sample.tick:06d}.jpg"
            _write_jpeg(root / rel, frame)
            cams.append({**geom.to_dict(), "file": rel.as_posix()})
        b = sample.boxes
        boxes = [{"category_id": int(b.labels[k]) + 1, "category": CLASS_NAMES[int(b.labels[k])],
                  "center": [round(float(v), 4) for v in b.centers[k]], "size": [round(float(v), 4) for v in b.sizes[k]],
                  "yaw": round(float(b.yaws[k]), 5), "cameras": list(b.cameras[k]), "object_id": int(b.ids[k])}
                 for k in range(len(b))]
        samples.append({"id": i + 1, "frame_index": sample.tick, "timestamp": sample.timestamp, "cameras": cams,
                        "boxes": boxes})
        if progress is not None:
            progress(i + 1, frames)
    doc = {
        "info": {"format": FORMAT, "description": "vitdeploy synthetic driving scenes, 3D boxes in the ego frame",
                 "seed": seed, "fps": fps, "stride": stride, "size": list(generator.size),
                 "cameras": list(generator.cameras), "ego_frame": "metres; x forward, y left, z up; origin on "
                 "the ground under the rig", "size_order": "length, width, height"},
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(CLASS_NAMES)],
        "samples": samples,
    }
    path = root / BOXES3D
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    return path


@dataclass(frozen=True, eq=False)
class RigRecord:
    """One frame set on disk: ``images`` in the order of ``geometry`` (rig order) and its boxes."""

    id: int
    frame_index: int
    timestamp: float
    images: tuple[Path, ...]
    geometry: tuple[CameraGeometry, ...]
    boxes: Boxes3D


@dataclass(frozen=True, eq=False)
class RigDataset:
    path: Path                     # the boxes3d.json file
    categories: tuple[str, ...]    # names, in the order of their ids
    cameras: tuple[str, ...]
    samples: tuple[RigRecord, ...]


def load_rig_dataset(path: str | os.PathLike) -> RigDataset:
    """Read ``boxes3d.json`` (or the folder holding it)."""
    path, doc = read_label_file(path, file_name=BOXES3D, what="3D labels",
                                how_to_write="write a drive with vitdeploy.data.rig_dataset.write_rig_dataset")
    try:
        if doc["info"]["format"] != FORMAT:
            raise DataError(f"{path} is {doc['info']['format']!r}, not {FORMAT!r}")
        cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
        index = {int(c["id"]): i for i, c in enumerate(cats)}
        samples = tuple(_record(s, path.parent, index) for s in doc["samples"])
        cameras = tuple(str(c) for c in doc["info"]["cameras"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{path} is not a 3D label file: missing or malformed {exc}") from None
    return RigDataset(path=path, categories=tuple(str(c["name"]) for c in cats), cameras=cameras, samples=samples)


def _record(s: dict, root: Path, category_index: dict[int, int]) -> RigRecord:
    boxes = s["boxes"]
    k = len(boxes)
    return RigRecord(
        id=int(s["id"]), frame_index=int(s["frame_index"]), timestamp=float(s["timestamp"]),
        images=tuple(root / c["file"] for c in s["cameras"]),
        geometry=tuple(CameraGeometry.from_dict(c) for c in s["cameras"]),
        boxes=Boxes3D(centers=np.array([b["center"] for b in boxes], np.float32).reshape(k, 3),
                      sizes=np.array([b["size"] for b in boxes], np.float32).reshape(k, 3),
                      yaws=np.array([b["yaw"] for b in boxes], np.float32).reshape(k),
                      labels=np.array([category_index[int(b["category_id"])] for b in boxes], np.int64).reshape(k),
                      scores=np.ones(k, np.float32),
                      cameras=tuple(tuple(str(c) for c in b["cameras"]) for b in boxes),
                      ids=np.array([int(b.get("object_id", -1)) for b in boxes], np.int64).reshape(k)),
    )
