"""Synthetic cameras: ``vitdeploy.data.scenes`` rendered live, for demos, tests and benchmarks.

URI: ``synthetic://CAMERA?size=HxW&seed=S&fps=F&loop=N`` where CAMERA is a rig camera name
(front, front_left, front_right, rear_left, rear_right, rear) or its index 0-5. All parameters are
optional: ``size`` defaults to the camera's resolution (else 256x448), ``fps`` to the camera's,
``seed`` to 0. ``loop=N`` renders ticks 0..N-1 once and replays them (cheap frames for
benchmarks); without it every tick is rendered fresh (about 30 ms per 256x448 frame on one core).
"""

from __future__ import annotations

import numpy as np

from vitdeploy.errors import DataError
from vitdeploy.runtime.sources.base import Source


def synthetic_camera_names(count: int) -> list[str]:
    """The first ``count`` camera names of the synthetic rig."""
    from vitdeploy.data.rig import CAMERA_NAMES

    if not 1 <= count <= len(CAMERA_NAMES):
        raise DataError(f"the synthetic rig has 1 to {len(CAMERA_NAMES)} cameras, asked for {count}")
    return list(CAMERA_NAMES[:count])


class SyntheticSource(Source):
    """Renders camera ``view`` (name or index) of the synthetic rig at tick 0, 1, 2, ...

    ``size`` is (H, W) pixels; ``loop`` > 0 replays the first ``loop`` ticks.
    """

    def __init__(self, camera: str, *, view: str | int, size: tuple[int, int] = (256, 448), seed: int = 0,
                 loop: int = 0, **kwargs):
        super().__init__(camera, **kwargs)
        self.view = view
        self.size = size
        self.seed = seed
        self.loop = loop
        self._generator = None
        self._tick = 0
        self._cache: dict[int, np.ndarray] = {}

    def describe(self) -> str:
        h, w = self.size
        return f"synthetic {self.view} {h}x{w} seed {self.seed}" + (f" loop {self.loop}" if self.loop else "")

    def _open(self) -> None:
        from vitdeploy.data.scenes import SceneGenerator

        if self._generator is None:
            self._generator = SceneGenerator(size=self.size, cameras=6, seed=self.seed,
                                             fps=self.fps if self.fps > 0 else 10.0, with_masks=False)
            self._generator.frame(0, self.view)  # an unknown camera name fails here, not mid-run

    def _read(self) -> np.ndarray | None:
        t = self._tick % self.loop if self.loop else self._tick
        self._tick += 1
        image = self._cache.get(t)
        if image is None:
            image = self._generator.frame(t, self.view).image
            if self.loop:
                image.flags.writeable = False  # replayed frames are shared by every set that uses them
                self._cache[t] = image
        return image
