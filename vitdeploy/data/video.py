"""Synthetic scenes as video files: one mp4 per camera, for trying a rig with video cameras."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2

from vitdeploy.bundle.files import atomic_path
from vitdeploy.data.scenes import SceneGenerator
from vitdeploy.errors import DataError


def write_videos(out: str | os.PathLike, *, frames: int, cameras: int = 6, size: tuple[int, int] = (256, 448),
                 seed: int = 0, fps: float = 10.0, progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Render ``frames`` ticks of the first ``cameras`` synthetic cameras into ``out/<camera>.mp4``
    (mp4v, ``size`` (H, W) pixels, ``fps`` frames per second); returns the paths. Each file is
    written under a temporary name and renamed when whole."""
    if frames < 1:
        raise DataError(f"frames={frames}: nothing to write; ask for at least 1 frame")
    generator = SceneGenerator(size=size, cameras=cameras, seed=seed, fps=fps, with_masks=False)
    h, w = generator.size
    paths = []
    for c, camera in enumerate(generator.cameras):
        path = Path(out) / f"{camera}.mp4"
        with atomic_path(path) as tmp:
            # OpenCV picks the container from the name; the temporary one does not end in .mp4
            staged = tmp.with_name(tmp.name + ".mp4")
            writer = cv2.VideoWriter(str(staged), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            try:
                if not writer.isOpened():
                    raise DataError(f"OpenCV cannot write {path} (mp4v); check the folder and the OpenCV build")
                for t in range(frames):
                    writer.write(cv2.cvtColor(generator.frame(t, camera).image, cv2.COLOR_RGB2BGR))
                    if progress:
                        progress(c * frames + t + 1, cameras * frames)
                writer.release()
                staged.replace(tmp)
            finally:
                writer.release()
                staged.unlink(missing_ok=True)
        paths.append(path)
    return paths
