"""Synthetic scenes on disk as a COCO dataset, and a small reader for COCO detection files.

Layout written by :func:`write_coco`::

    out/images/<camera>/<tick:06d>.jpg
    out/annotations.json      COCO: images (+ camera, frame_index, timestamp), annotations with
                              bbox, area, iscrowd=0 and RLE segmentation, categories 1..6

COCO category ids start at 1: ``category_id = Annotation.category_id + 1`` and the names are
``vitdeploy.models.zoo.DRIVING_CLASSES`` in order (``world.CLASS_NAMES``, the same tuple without torch).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vitdeploy.bundle.files import atomic_path
from vitdeploy.data.scenes import SceneGenerator, SynthFrame
from vitdeploy.data.world import CLASS_NAMES
from vitdeploy.errors import DataError

ANNOTATIONS = "annotations.json"
_JPEG_QUALITY = 95


def write_coco(out: str | os.PathLike, *, frames: int, cameras: int = 6, size: tuple[int, int] = (256, 448),
               seed: int = 0, stride: int = 1, fps: float = 10.0,
               progress: Callable[[int, int], None] | None = None) -> Path:
    """Render ``frames`` ticks of ``cameras`` cameras and write them to ``out`` as a COCO dataset.

    Args:
        out: folder to write into (created if missing; existing images of the same names are replaced).
        frames: how many ticks to write; each gives one image per camera.
        cameras: the first ``cameras`` of :data:`vitdeploy.data.CAMERA_NAMES`.
        size: (height, width) of the images, pixels.
        seed: the drive; the same arguments write the same dataset.
        stride: write every ``stride``-th tick (ticks 0, stride, 2*stride, ...). Consecutive ticks
            are 1/fps s apart and look alike; a stride of 5-10 gives more varied training data.
        fps: ticks per second, for the timestamps.
        progress: called as ``progress(images_done, images_total)`` after each image.

    Returns the path of ``annotations.json``, written last and atomically: if it exists, the
    images it lists are complete.
    """
    if frames < 1:
        raise DataError(f"frames={frames}: nothing to write; ask for at least 1 frame")
    if stride < 1:
        raise DataError(f"stride={stride} must be at least 1 (1 writes every tick)")
    generator = SceneGenerator(size=size, cameras=cameras, seed=seed, fps=fps, with_masks=True)
    root = _writable_folder(Path(out))
    from faster_coco_eval.core import mask as coco_mask

    images: list[dict] = []
    annotations: list[dict] = []
    total = frames * len(generator.cameras)
    for i in range(frames):
        tick = i * stride
        for frame in generator.frame_set(tick):
            image_id = len(images) + 1
            rel = Path("images") / frame.camera / f"{tick:06d}.jpg"
            _write_jpeg(root / rel, frame)
            images.append({"id": image_id, "file_name": rel.as_posix(), "height": generator.size[0],
                           "width": generator.size[1], "camera": frame.camera, "frame_index": tick,
                           "timestamp": frame.timestamp})
            if frame.annotations:
                masks = np.stack([a.mask for a in frame.annotations], axis=-1).astype(np.uint8)  # type: ignore[misc]
                rles = coco_mask.encode(np.asfortranarray(masks))
                for a, rle in zip(frame.annotations, rles, strict=True):
                    annotations.append({
                        "id": len(annotations) + 1, "image_id": image_id, "category_id": a.category_id + 1,
                        "bbox": [round(v, 2) for v in a.box], "area": a.area, "iscrowd": 0,
                        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
                    })
            if progress is not None:
                progress(len(images), total)
    doc = {
        "info": {"description": "vitdeploy synthetic driving scenes", "seed": seed, "fps": fps, "stride": stride,
                 "size": list(generator.size), "cameras": list(generator.cameras)},
        "licenses": [],
        "categories": [{"id": i + 1, "name": name, "supercategory": "driving"} for i, name in enumerate(CLASS_NAMES)],
        "images": images,
        "annotations": annotations,
    }
    path = root / ANNOTATIONS
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    return path


def _writable_folder(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise DataError(f"{path} exists and is a file; give a folder to write the dataset into")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe."):
            pass
    except OSError as exc:
        raise DataError(f"cannot write to {path}: {exc.strerror or exc}; choose a writable folder") from exc
    return path


def _write_jpeg(path: Path, frame: SynthFrame) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise DataError(f"could not encode {path.name} as JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


# ------------------------------------------------------------------ reading

@dataclass(frozen=True, eq=False)
class CocoImage:
    """One image of a COCO file with its ground truth boxes.

    ``boxes`` is (N, 4) float32 x, y, w, h in pixels; ``labels`` is (N,) int64, an index into
    :attr:`CocoDataset.categories` (0-based, in the order of the file's category ids).
    """

    id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    camera: str | None = None
    frame_index: int | None = None
    timestamp: float | None = None


@dataclass(frozen=True, eq=False)
class CocoDataset:
    annotations: Path            # the annotations file
    categories: tuple[str, ...]  # names, in the order of their COCO ids
    category_ids: tuple[int, ...]
    images: tuple[CocoImage, ...]


def read_label_file(path: str | os.PathLike, *, file_name: str, what: str, how_to_write: str) -> tuple[Path, dict]:
    """(the file, its JSON) for a label file ``path`` or the folder holding ``file_name``; a
    missing or unreadable file is a ``DataError`` naming ``what`` it should be and ``how_to_write`` one."""
    path = Path(path)
    if path.is_dir():
        path = path / file_name
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"no {what} at {path}; {how_to_write}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path} as {what} JSON: {exc}") from None


def load_coco(path: str | os.PathLike) -> CocoDataset:
    """Read a COCO detection file (or a folder holding ``annotations.json``): image paths and boxes."""
    path, doc = read_label_file(path, file_name=ANNOTATIONS, what="COCO annotations",
                                how_to_write="write a dataset with `vitdeploy data synth --out DIR`")
    try:
        cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
        cat_index = {int(c["id"]): i for i, c in enumerate(cats)}
        per_image: dict[int, tuple[list, list]] = {int(im["id"]): ([], []) for im in doc["images"]}
        for a in doc.get("annotations", []):
            if a.get("iscrowd", 0):
                continue
            boxes, labels = per_image[int(a["image_id"])]
            boxes.append([float(v) for v in a["bbox"]])
            labels.append(cat_index[int(a["category_id"])])
        images = tuple(
            CocoImage(id=int(im["id"]), path=path.parent / im["file_name"], width=int(im["width"]),
                      height=int(im["height"]),
                      boxes=np.asarray(per_image[int(im["id"])][0], dtype=np.float32).reshape(-1, 4),
                      labels=np.asarray(per_image[int(im["id"])][1], dtype=np.int64),
                      camera=im.get("camera"), frame_index=im.get("frame_index"), timestamp=im.get("timestamp"))
            for im in doc["images"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path} is not a COCO detection file: missing or malformed {exc}") from None
    return CocoDataset(annotations=path, categories=tuple(str(c["name"]) for c in cats),
                       category_ids=tuple(int(c["id"]) for c in cats), images=images)
