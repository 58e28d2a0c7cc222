"""Labelled data for `vitdeploy eval`: COCO files, image folders, and held-out synthetic drives.

A dataset is named by one string (``--data``):

* ``synthetic`` or ``synthetic:seed=7,frames=120,cameras=6,size=256x448,stride=7`` — scenes of
  ``vitdeploy.data.SceneGenerator`` rendered on the fly. The default seed 7 is the held-out drive
  (demo training uses seeds >= 1000); ``frames`` counts images (ticks x cameras); ``size`` (H x W
  pixels) defaults to the model's input size; every ``stride``-th tick is used, so consecutive
  images are not near-duplicates. Boxes and per-pixel class masks are exact.
* a COCO detection file, or a folder holding ``annotations.json`` (``vitdeploy data synth``
  writes one): boxes from ``bbox``; masks from ``segmentation`` (RLE or polygons) when asked for.
* a folder with one sub-folder of images per class (``DIR/<class name>/*.jpg``): a classification
  set for cls/cait heads.

Images are read (or rendered) one at a time, so a large dataset does not sit in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitdeploy.data.frames import IMAGE_SUFFIXES, images_in, read_image
from vitdeploy.errors import DataError
from vitdeploy.heads.semantic import BACKGROUND

SYNTHETIC = "synthetic"
#: The held-out synthetic drive (tools/train_demo.py trains on seeds >= 1000 and evaluates on 7).
EVAL_SEED = 7
_SYNTHETIC_KEYS = {"seed", "frames", "cameras", "size", "stride"}


@dataclass(frozen=True, eq=False)
class EvalImage:
    """One labelled image.

    ``image`` (H, W, 3) uint8 RGB; ``boxes`` (K, 4) float32 x1, y1, x2, y2 in frame pixels and
    ``labels`` (K,) int64 indices into the dataset's ``class_names``; ``semantic`` (H, W) uint8
    class index per pixel (``BACKGROUND`` where there is none) or None; ``label`` the class index
    of a classification image, else None. ``image_id`` is the image's id in a COCO file (None:
    predictions files number images from 1 in dataset order).
    """

    name: str
    image: np.ndarray
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    semantic: np.ndarray | None = None
    label: int | None = None
    image_id: int | None = None


@dataclass(frozen=True, eq=False)
class EvalDataset:
    """A labelled dataset: ``task`` (``detection`` or ``classification``), ``class_names`` in label
    order, ``size`` images, ``has_masks`` (per-pixel labels available), and ``images()`` which
    loads them one at a time (with masks only when asked: they cost time). ``category_ids`` are
    a COCO file's category ids in ``class_names`` order (None: 1, 2, ... in that order)."""

    name: str
    task: str
    class_names: tuple[str, ...]
    size: int
    has_masks: bool
    _load: Callable[[bool], Iterator[EvalImage]]
    category_ids: tuple[int, ...] | None = None

    def images(self, *, masks: bool = False) -> Iterator[EvalImage]:
        return self._load(masks and self.has_masks)

    def __len__(self) -> int:
        return self.size


# ---- synthetic ---------------------------------------------------------------------------------

def synthetic_dataset(*, image_size: tuple[int, int], seed: int = EVAL_SEED, frames: int = 120, cameras: int = 6,
                      stride: int = 7) -> EvalDataset:
    """``frames`` images of the synthetic rig's first ``cameras`` cameras at ``image_size`` (H, W),
    every ``stride``-th tick of drive ``seed``."""
    from vitdeploy.data.scenes import SceneGenerator
    from vitdeploy.data.world import CLASS_NAMES

    if frames < 1 or stride < 1:
        raise DataError(f"synthetic data needs frames >= 1 and stride >= 1, got frames={frames} stride={stride}")
    SceneGenerator(size=image_size, cameras=cameras, seed=seed, with_masks=False)  # checks size and cameras now

    def load(masks: bool) -> Iterator[EvalImage]:
        gen = SceneGenerator(size=image_size, cameras=cameras, seed=seed, with_masks=masks)
        for i in range(frames):
            tick, cam = (i // cameras) * stride, i % cameras
            f = gen.frame(tick, cam)
            boxes = np.asarray([[x, y, x + w, y + h] for x, y, w, h in (a.box for a in f.annotations)],
                               np.float32).reshape(-1, 4)
            labels = np.asarray([a.category_id for a in f.annotations], np.int64)
            semantic = None
            if masks:
                semantic = np.full(gen.size, BACKGROUND, np.uint8)
                for a in f.annotations:  # visible pixels: the masks of one frame never overlap
                    semantic[a.mask] = a.category_id
            yield EvalImage(f"{f.camera}/{tick:06d}", f.image, boxes, labels, semantic)

    h, w = image_size
    return EvalDataset(name=f"synthetic seed={seed} frames={frames} cameras={cameras} size={h}x{w} stride={stride}",
                       task="detection", class_names=tuple(CLASS_NAMES), size=frames, has_masks=True, _load=load)


def parse_synthetic(spec: str, *, image_size: tuple[int, int], frames: int | None = None,
                    frame_sets: bool = False) -> EvalDataset:
    """``synthetic[:key=value,...]`` -> the dataset; ``frames`` (``--frames``) overrides the spec's;
    ``frame_sets``: whole labelled frame sets for a rig-level head (``evaluation.rig_datasets``)."""
    _, _, rest = spec.partition(":")
    args: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in _SYNTHETIC_KEYS:
            raise DataError(f"--data {spec!r}: {part!r} is not one of {', '.join(sorted(_SYNTHETIC_KEYS))} as "
                            "key=value; e.g. synthetic:seed=7,frames=120")
        args[key.strip()] = value.strip()
    try:
        ints = {k: int(v) for k, v in args.items() if k != "size"}
    except ValueError:
        raise DataError(f"--data {spec!r}: seed, frames, cameras and stride are integers") from None
    size = image_size
    if "size" in args:
        h, sep, w = args["size"].lower().partition("x")
        if not sep or not h.isdigit() or not w.isdigit():
            raise DataError(f"--data {spec!r}: size={args['size']!r} is not HEIGHTxWIDTH in pixels, e.g. 256x448")
        size = (int(h), int(w))
    if frames is not None:
        ints["frames"] = frames
    if frame_sets:
        from vitdeploy.evaluation.rig_datasets import synthetic_rig_dataset

        return synthetic_rig_dataset(image_size=size, **ints)
    return synthetic_dataset(image_size=size, **ints)


# ---- COCO ----------------------------------------------------------------------------------------

def coco_dataset(path: str | Path, *, frames: int | None = None) -> EvalDataset:
    """A COCO detection file (or a folder with ``annotations.json``); the first ``frames`` images."""
    from vitdeploy.data.coco import load_coco

    coco = load_coco(path)
    images = coco.images[:frames] if frames is not None else coco.images
    if not images:
        raise DataError(f"{coco.annotations} lists no images; nothing to evaluate")
    segmentations = _coco_segmentations(coco.annotations, {im.id for im in images}, coco.category_ids)
    root = coco.annotations.parent

    def load(masks: bool) -> Iterator[EvalImage]:
        for im in images:
            image = read_image(im.path)
            if image.shape[:2] != (im.height, im.width):
                raise DataError(f"{im.path} is {image.shape[1]}x{image.shape[0]} pixels but {coco.annotations} "
                                f"says {im.width}x{im.height}; the boxes would not fit it")
            boxes = im.boxes.copy()
            boxes[:, 2:] += boxes[:, :2]  # COCO x, y, w, h -> x1, y1, x2, y2
            semantic = _paint(segmentations.get(im.id, []), im.height, im.width) if masks else None
            name = str(im.path.relative_to(root)) if im.path.is_relative_to(root) else str(im.path)
            yield EvalImage(name, image, boxes, im.labels, semantic, image_id=im.id)

    return EvalDataset(name=f"COCO {coco.annotations}", task="detection", class_names=coco.categories,
                       size=len(images), has_masks=any(segmentations.values()), _load=load,
                       category_ids=coco.category_ids)


def _coco_segmentations(path: Path, image_ids: set[int], category_ids: tuple[int, ...]) -> dict[int, list]:
    """image id -> [(class index, segmentation, area)] for annotations that have a segmentation."""
    doc = json.loads(path.read_text(encoding="utf-8"))  # load_coco has already proven it readable
    index = {c: i for i, c in enumerate(category_ids)}
    out: dict[int, list] = {}
    for a in doc.get("annotations", []):
        seg = a.get("segmentation")
        if a.get("iscrowd", 0) or not seg or int(a["image_id"]) not in image_ids:
            continue
        out.setdefault(int(a["image_id"]), []).append((index[int(a["category_id"])], seg, float(a.get("area", 0))))
    return out


def _paint(segs: list, height: int, width: int) -> np.ndarray:
    """A semantic map from COCO segmentations; larger objects first, so a small one on top of a
    large one (overlapping COCO masks) keeps its pixels."""
    from faster_coco_eval.core import mask as coco_mask

    semantic = np.full((height, width), BACKGROUND, np.uint8)
    for label, seg, _area in sorted(segs, key=lambda s: -s[2]):
        try:
            if isinstance(seg, list):  # polygons
                rle = coco_mask.merge(coco_mask.frPyObjects(seg, height, width))
            elif isinstance(seg.get("counts"), list):  # uncompressed RLE
                rle = coco_mask.frPyObjects(seg, height, width)
            else:
                rle = seg
            m = coco_mask.decode(rle).astype(bool)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise DataError(f"a segmentation of a {width}x{height} image cannot be decoded ({exc}); "
                            "expected COCO polygons or RLE") from None
        if m.ndim == 3:
            m = m.any(axis=2)
        semantic[m] = label
    return semantic


# ---- classification image folders ----------------------------------------------------------------

def image_folder_dataset(path: str | Path, *, frames: int | None = None) -> EvalDataset:
    """``path/<class name>/<image>``: a classification set; classes sorted by name."""
    root = Path(path)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(p, i) for i, c in enumerate(classes) for p in images_in(root / c)]
    if not files:
        raise DataError(f"{root} has neither annotations.json (COCO) nor class sub-folders with images "
                        f"({', '.join(IMAGE_SUFFIXES)}); see `vitdeploy eval --help` for the formats")
    files = files[:frames] if frames is not None else files

    def load(_masks: bool) -> Iterator[EvalImage]:
        for p, label in files:
            yield EvalImage(f"{p.parent.name}/{p.name}", read_image(p), label=label)

    return EvalDataset(name=f"image folder {root}", task="classification", class_names=tuple(classes),
                       size=len(files), has_masks=False, _load=load)


# ---- one entry point -----------------------------------------------------------------------------

def open_dataset(spec: str | Path, *, image_size: tuple[int, int], frames: int | None = None,
                 task: str | None = None) -> EvalDataset:
    """The dataset ``spec`` names (see the module docstring); ``image_size`` (H, W) is the default
    size of synthetic images; ``frames`` limits the number of images. ``task``: the head's
    ``eval_task``; "detection3d" reads labelled frame sets (``evaluation.rig_datasets``)."""
    if frames is not None and frames < 1:
        raise DataError(f"--frames {frames}: evaluate at least 1 image")
    text = str(spec)
    frame_sets = task == "detection3d"
    if text == SYNTHETIC or text.startswith(SYNTHETIC + ":"):
        return parse_synthetic(text, image_size=image_size, frames=frames, frame_sets=frame_sets)
    path = Path(text)
    if not path.exists():
        raise DataError(f"dataset {path} does not exist; give a COCO annotations file, a folder, or "
                        "'synthetic:seed=7,frames=120'")
    if frame_sets and ((path / "boxes3d.json").is_file() or path.name == "boxes3d.json"):
        from vitdeploy.evaluation.rig_datasets import rig_folder_dataset

        return rig_folder_dataset(path, frames=frames)
    if path.is_file() or (path / "annotations.json").is_file():
        return coco_dataset(path, frames=frames)
    return image_folder_dataset(path, frames=frames)


def class_mapping(dataset: EvalDataset, model_classes: list[str] | tuple[str, ...]) -> np.ndarray:
    """dataset class index -> model class index, matched by name; a ``DataError`` names the
    classes the model does not know."""
    where = {name: i for i, name in enumerate(model_classes)}
    unknown = [c for c in dataset.class_names if c not in where]
    if unknown:
        more = " ..." if len(model_classes) > 12 else ""
        raise DataError(f"{dataset.name}: classes {unknown} are not the model's; it knows "
                        f"{list(model_classes)[:12]}{more}")
    return np.asarray([where[c] for c in dataset.class_names], np.int64)
