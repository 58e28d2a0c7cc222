"""Labelled frame sets for a rig-level 3D head (``eval_task`` "detection3d"): whole frame sets with
each camera's geometry and the set's 3D boxes in the ego frame.

* ``synthetic[:seed=7,frames=30,cameras=6,size=HxW,stride=13]``: frame sets of the synthetic rig's
  held-out drive rendered on the fly (``frames`` counts frame sets), each with its scene's geometry
  and exact 3D labels (``vitdeploy.data.boxes3d``);
* a folder with ``boxes3d.json`` (``vitdeploy data rig3d``, ``vitdeploy.data.rig_dataset``).

The boxes are scored by nuScenes' definitions (``vitdeploy.heads.metrics3d``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitdeploy.data.geometry import CameraGeometry
from vitdeploy.errors import DataError
from vitdeploy.evaluation.datasets import EVAL_SEED, EvalDataset
from vitdeploy.heads import Boxes3D

DETECTION3D = "detection3d"


@dataclass(frozen=True, eq=False)
class EvalFrameSet:
    """One labelled frame set: ``images`` (H, W, 3) uint8 RGB in rig order, each camera's
    ``geometry`` (intrinsics in pixels of its image), and ``boxes``: the set's 3D ground truth in the
    ego frame with dataset class indices; ``image_id`` the sample's id in its file (None: its position)."""

    name: str
    images: list[np.ndarray]
    geometry: tuple[CameraGeometry, ...]
    boxes: Boxes3D
    image_id: int | None = None


def synthetic_rig_dataset(*, image_size: tuple[int, int], seed: int = EVAL_SEED, frames: int = 30, cameras: int = 6,
                          stride: int = 13) -> EvalDataset:
    """``frames`` frame sets of the synthetic rig's first ``cameras`` cameras at ``image_size``
    (H, W), every ``stride``-th tick of drive ``seed``."""
    from vitdeploy.data.boxes3d import render_rig_sample
    from vitdeploy.data.scenes import SceneGenerator
    from vitdeploy.data.world import CLASS_NAMES

    if frames < 1 or stride < 1:
        raise DataError(f"synthetic frame sets need frames >= 1 and stride >= 1, got frames={frames} stride={stride}")
    SceneGenerator(size=image_size, cameras=cameras, seed=seed, with_masks=False)  # checks size and cameras now

    def load(_masks: bool) -> Iterator[EvalFrameSet]:
        gen = SceneGenerator(size=image_size, cameras=cameras, seed=seed, with_masks=False)
        for i in range(frames):
            sample = render_rig_sample(gen, i * stride)
            yield EvalFrameSet(f"set/{sample.tick:06d}", [f.image for f in sample.frames], sample.geometry,
                               sample.boxes)

    h, w = image_size
    return EvalDataset(name=f"synthetic frame sets seed={seed} frames={frames} cameras={cameras} size={h}x{w} "
                            f"stride={stride}", task=DETECTION3D, class_names=tuple(CLASS_NAMES), size=frames,
                       has_masks=False, _load=load)


def rig_folder_dataset(path: str | Path, *, frames: int | None = None) -> EvalDataset:
    """The frame sets of a 3D rig dataset (``boxes3d.json`` or its folder), at most ``frames``."""
    from vitdeploy.data.frames import read_image
    from vitdeploy.data.rig_dataset import load_rig_dataset

    dataset = load_rig_dataset(path)
    records = dataset.samples[:frames] if frames is not None else dataset.samples

    def load(_masks: bool) -> Iterator[EvalFrameSet]:
        for r in records:
            yield EvalFrameSet(f"set/{r.frame_index:06d}", [read_image(p) for p in r.images], r.geometry, r.boxes,
                               image_id=r.id)

    return EvalDataset(name=f"3D rig dataset {dataset.path}", task=DETECTION3D, class_names=dataset.categories,
                       size=len(records), has_masks=False, _load=load)
