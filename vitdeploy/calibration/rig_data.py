"""Calibration data of a rig-level graph: whole frame sets with their camera geometry.

A rig-level model (``Head.geometry_inputs``) takes one frame set per run: ``images`` (cameras, 3,
H, W) with each camera's ``intrinsics`` and ``cam_to_ego``. Its camera axis is not a frame axis —
the head attends across the cameras of one set — so calibration draws frame sets, not frames, and
feeds ModelOpt and the accuracy report one set per run (``CalibrationData.set_cameras``).

``--data`` is ``synthetic`` (frame sets of vitdeploy's synthetic rig, calibration from even scenes
and held-out sets from odd ones, each with its scene's geometry) or a 3D rig dataset folder
(``vitdeploy.data.rig_dataset``: images and per-sample geometry). The geometry goes through the
manifest's preprocessing as the runtime's does (``runtime.rig_geometry``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vitdeploy.bundle.manifest import Preprocessing, TensorSpec
from vitdeploy.calibration.data import (
    _SYNTH_TICKS_PER_SCENE,
    SYNTHETIC,
    CalibrationData,
    DataKind,
    ProgressFn,
    _check_shapes,
    _split_counts,
)
from vitdeploy.data.geometry import CameraGeometry
from vitdeploy.errors import DataError
from vitdeploy.runtime.preprocess import prepare_batch
from vitdeploy.runtime.rig_geometry import geometry_inputs

#: (frames in rig order, their cameras' geometry): one frame set.
FrameSet = tuple[list[np.ndarray], Sequence[CameraGeometry]]
#: Reads (renders) one frame set when called: sets are read one at a time, not all held at once.
SetReader = Callable[[], FrameSet]


def load_frame_sets(source: str, *, inputs: list[TensorSpec], preprocessing: Preprocessing, cameras: int,
                    samples: int, heldout: int, seed: int, warnings: list[str],
                    progress: ProgressFn | None) -> CalibrationData:
    """``samples`` calibration and ``heldout`` held-out frame sets of ``cameras`` cameras (seeded,
    disjoint) from ``source`` (``synthetic`` or a 3D rig dataset folder)."""
    names = sorted(s.name for s in inputs)
    if not any(len(s.shape) == 4 for s in inputs) or len(inputs) < 2:
        raise DataError(f"frame sets feed a rig graph (images and camera geometry); this graph takes {names}")
    rng = np.random.default_rng(seed)
    if source == SYNTHETIC:
        kind, cal_sets, held_sets = DataKind.SYNTHETIC, *_synthetic_sets(preprocessing, cameras, samples, heldout, rng)
    else:
        kind = DataKind.RIG
        cal_sets, held_sets = _dataset_sets(Path(source), cameras, samples, heldout, rng, warnings)
    data = CalibrationData(source=source, kind=kind, seed=seed, calibration={}, heldout={}, warnings=warnings,
                           set_cameras=cameras)
    for target, sets, stage in ((data.calibration, cal_sets, "reading calibration frame sets"),
                                (data.heldout, held_sets, "reading held-out frame sets")):
        target.update(_feeds(sets, preprocessing, stage=stage, count=len(sets), progress=progress))
    if sorted(data.calibration) != names:
        raise DataError(f"frame sets give the inputs {sorted(data.calibration)}, the graph takes {names}")
    _check_shapes(data.calibration, inputs, source)
    return data


def _feeds(sets: Sequence[SetReader], preprocessing: Preprocessing, *, stage: str, count: int,
           progress: ProgressFn | None) -> dict[str, np.ndarray]:
    """The graph's inputs for ``sets``, concatenated along the camera axis, set after set."""
    parts: dict[str, list[np.ndarray]] = {}
    for done, read in enumerate(sets, 1):
        frames, geometry = read()
        images, _ = prepare_batch(frames, preprocessing, allow_resize=True)
        for name, value in {"images": images, **geometry_inputs(geometry, preprocessing)}.items():
            parts.setdefault(name, []).append(value)
        if progress:
            progress(stage, done, count)
    return {name: np.concatenate(values) for name, values in parts.items()}


def _synthetic_sets(preprocessing: Preprocessing, cameras: int, samples: int, heldout: int,
                    rng: np.random.Generator) -> tuple[list[SetReader], list[SetReader]]:
    from vitdeploy.data.scenes import SceneGenerator

    size = tuple(preprocessing.source_size or preprocessing.image_size)
    gen = SceneGenerator(size=size, cameras=cameras, seed=int(rng.integers(0, 2**31)), with_masks=False)

    def read(tick: int) -> SetReader:
        return lambda: ([f.image for f in gen.frame_set(tick)],
                        [CameraGeometry.from_rig_camera(c) for c in gen.scene_at(tick)[2]])

    def draw(count: int, parity: int) -> list[SetReader]:
        scenes = max(4, -(-count // 4))  # at most ~4 sets per scene
        pool = [(s * 2 + parity) * _SYNTH_TICKS_PER_SCENE + t for s in range(scenes) for t in range(_SYNTH_TICKS_PER_SCENE)]
        return [read(pool[int(i)]) for i in sorted(rng.choice(len(pool), size=count, replace=False))]

    return draw(samples, 0), draw(heldout, 1)


def _dataset_sets(path: Path, cameras: int, samples: int, heldout: int, rng: np.random.Generator,
                  warnings: list[str]) -> tuple[list[SetReader], list[SetReader]]:
    from vitdeploy.data.frames import read_image
    from vitdeploy.data.rig_dataset import BOXES3D, load_rig_dataset

    if not (path / BOXES3D).is_file() and not (path.is_file() and path.name == BOXES3D):
        raise DataError(f"{path}: a rig-level graph calibrates on whole frame sets with their geometry; give "
                        f"'{SYNTHETIC}' or a 3D rig dataset folder with {BOXES3D} (`vitdeploy data rig3d`)")
    dataset = load_rig_dataset(path)
    if len(dataset.cameras) != cameras:
        raise DataError(f"{path} has frame sets of {len(dataset.cameras)} cameras, the bundle answers for {cameras}")
    cal, held = _split_counts(len(dataset.samples), samples, heldout, str(path), warnings)
    order = rng.permutation(len(dataset.samples))

    def read(k: int) -> SetReader:
        record = dataset.samples[k]
        return lambda: ([read_image(p) for p in record.images], record.geometry)

    return [read(int(k)) for k in order[:cal]], [read(int(k)) for k in order[cal:cal + held]]
