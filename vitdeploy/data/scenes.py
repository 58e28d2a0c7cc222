"""Synthetic multi-camera driving scenes with pixel-exact labels, as a pure function of (seed, t).

``SceneGenerator(seed=...).frame(t, camera)`` renders what camera ``camera`` of the rig sees at tick
``t`` (``t / fps`` seconds): a road with lanes, kerbs and a horizon, and on it cars, trucks,
pedestrians, cyclists, traffic cones and traffic lights (:data:`DRIVING_CLASSES`), lit by day, dusk
or night, with motion blur and sensor noise. Consecutive ticks of one camera form a video; any tick
can be rendered first, in any order, and gives the same pixels and labels.

Labels come from what is visible: objects are painted far to near into an id buffer, so a mask
holds only the pixels of an object that nothing nearer covers, and its box is that mask's extent.
Objects with fewer than :data:`MIN_AREA_PX` visible pixels, less than :data:`MIN_VISIBLE` of
their in-frame silhouette visible, or a visible box shorter than :data:`MIN_HEIGHT_FRACTION` of the
frame height, are painted but not labelled.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from vitdeploy.data.render import OCCLUDER_ID, Painted, paint_background, paint_markings, paint_things, sensor
from vitdeploy.data.rig import CAMERA_NAMES, Camera, rig_cameras
from vitdeploy.data.world import LOOKS, Episode, Lighting, make_episode
from vitdeploy.errors import DataError

__all__ = ["CAMERA_NAMES", "MIN_AREA_PX", "MIN_VISIBLE", "Annotation", "Lighting", "SceneGenerator", "SynthFrame"]

#: Objects with fewer visible pixels than this are not labelled.
MIN_AREA_PX = 30
#: Objects with less than this fraction of their in-frame silhouette visible are not labelled.
MIN_VISIBLE = 0.25
#: Objects whose visible box is shorter than this fraction of the frame height are painted but not
#: labelled: too far away to matter to the planner, like KITTI's minimum box height (25 px of 375
#: rows). 5% is 10 px at 192 rows, 13 px at 256, 36 px at 720.
MIN_HEIGHT_FRACTION = 0.05
_MIN_SIDE_PX = 32
_NOISE_PAD = 32


@dataclass(frozen=True, eq=False)
class Annotation:
    """One labelled object in one frame.

    ``category_id`` indexes ``vitdeploy.models.zoo.DRIVING_CLASSES`` (0-based; COCO files add 1).
    ``box`` is (x, y, w, h) in pixels, COCO style, the exact extent of ``mask``: the object's
    visible pixels as an (H, W) bool array, or None when the generator was made with
    ``with_masks=False``. ``area`` is the number of visible pixels. ``thing`` is the object's
    index in its scene (:meth:`SceneGenerator.scene_at`): the same object in two cameras of one
    tick has the same ``thing``.
    """

    category_id: int
    box: tuple[float, float, float, float]
    mask: np.ndarray | None
    area: int
    thing: int = -1


@dataclass(frozen=True, eq=False)
class SynthFrame:
    """What one camera saw at tick ``index``: ``image`` (H, W, 3) uint8 RGB at ``timestamp`` seconds."""

    camera: str
    index: int
    timestamp: float
    image: np.ndarray
    annotations: tuple[Annotation, ...]


class SceneGenerator:
    """Renders the rig's cameras over a synthetic drive; deterministic in ``seed``.

    Args:
        size: (height, width) of every image, pixels.
        cameras: how many cameras, the first of :data:`CAMERA_NAMES` (1-6).
        seed: picks the drive; the same seed gives the same frames.
        fps: ticks per second; tick ``t`` is at ``t / fps`` seconds.
        with_masks: False skips the per-object (H, W) masks (boxes and areas remain), for speed.
        lighting: force one lighting for the whole drive instead of drawing one per scene.
        scene_seconds: the drive cuts to a new road, population and lighting this often.

    Thread-safe: the only state is a cache of per-scene backgrounds and noise, which do not change
    what is rendered.
    """

    def __init__(self, *, size: tuple[int, int] = (256, 448), cameras: int = 6, seed: int = 0, fps: float = 10.0,
                 with_masks: bool = True, lighting: Lighting | None = None, scene_seconds: float = 8.0) -> None:
        if len(size) != 2 or min(size) < _MIN_SIDE_PX:
            raise DataError(f"image size {tuple(size)} is too small; give (height, width) of at least "
                            f"{_MIN_SIDE_PX}x{_MIN_SIDE_PX} pixels, e.g. (256, 448)")
        if not 1 <= cameras <= len(CAMERA_NAMES):
            raise DataError(f"cameras={cameras} is out of range; the rig has 1 to {len(CAMERA_NAMES)}: "
                            f"{', '.join(CAMERA_NAMES)}")
        if not fps > 0 or not scene_seconds > 0:
            raise DataError(f"fps ({fps}) and scene_seconds ({scene_seconds}) must be positive")
        self.size = (int(size[0]), int(size[1]))
        self.cameras: tuple[str, ...] = CAMERA_NAMES[:cameras]
        self.seed = int(seed)
        self.fps = float(fps)
        self.with_masks = with_masks
        self.lighting = lighting
        self.scene_seconds = float(scene_seconds)
        self._lock = threading.Lock()          # guards the caches
        self._build_lock = threading.Lock()    # one scene is built at a time
        self._scenes: OrderedDict[int, tuple[Episode, tuple[Camera, ...]]] = OrderedDict()
        self._backgrounds: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._noise: dict[Lighting, np.ndarray] = {}

    # ------------------------------------------------------------ public
    def frame(self, t: int, camera: int | str) -> SynthFrame:
        """Render camera ``camera`` (index or name) at tick ``t`` >= 0."""
        cam_index = self._camera_index(camera)
        episode, tau, cams = self.scene_at(t)
        time_s = t / self.fps
        cam = cams[cam_index]
        img = self._background(episode, cams, cam_index).copy()
        ids = np.zeros(self.size, dtype=np.uint8)
        paint_markings(img, episode, cam, tau)
        painted = paint_things(img, ids, episode, cam, tau)
        annotations = self._labels(ids, painted)
        sensor(img, episode, cam, self._noise_bank(episode.lighting), _noise_offset(self.seed, t, cam_index))
        return SynthFrame(camera=cam.name, index=int(t), timestamp=time_s, image=img, annotations=annotations)

    def frame_set(self, t: int) -> list[SynthFrame]:
        """All cameras at tick ``t``, in :attr:`cameras` order."""
        return [self.frame(t, i) for i in range(len(self.cameras))]

    def scene_at(self, t: int) -> tuple[Episode, float, tuple[Camera, ...]]:
        """The scene tick ``t`` falls in: (episode, seconds into it, the rig's cameras in it)."""
        if t < 0:
            raise DataError(f"tick {t} is negative; ticks start at 0")
        time_s = t / self.fps
        scene = int(math.floor(time_s / self.scene_seconds))
        episode, cams = self._scene(scene)
        return episode, time_s - scene * self.scene_seconds, cams

    def lighting_at(self, t: int) -> Lighting:
        """The lighting of the scene that tick ``t`` falls in."""
        return self._scene(int(math.floor(t / self.fps / self.scene_seconds)))[0].lighting

    # ------------------------------------------------------------ internals
    def _camera_index(self, camera: int | str) -> int:
        if isinstance(camera, str):
            if camera not in self.cameras:
                raise DataError(f"unknown camera {camera!r}; this generator has: {', '.join(self.cameras)}")
            return self.cameras.index(camera)
        if not 0 <= camera < len(self.cameras):
            raise DataError(f"camera index {camera} is out of range 0..{len(self.cameras) - 1}")
        return int(camera)

    def _scene(self, index: int) -> tuple[Episode, tuple[Camera, ...]]:
        # one thread builds a new scene (tens of ms) while the cameras' other threads wait for it
        with self._build_lock:
            with self._lock:
                hit = self._scenes.get(index)
                if hit is not None:
                    self._scenes.move_to_end(index)
                    return hit
            episode = make_episode(self.seed, index, lighting=self.lighting)
            cams = rig_cameras(self.size, count=len(self.cameras), pitch_deg=episode.pitch_deg)
            with self._lock:
                self._scenes[index] = (episode, cams)
                while len(self._scenes) > 2:
                    self._scenes.popitem(last=False)
            return episode, cams

    def _background(self, episode: Episode, cams: tuple[Camera, ...], cam_index: int) -> np.ndarray:
        key = (episode.index, cam_index)
        with self._lock:
            hit = self._backgrounds.get(key)
            if hit is not None:
                return hit
        bg = paint_background(episode, cams[cam_index])
        bg.flags.writeable = False
        with self._lock:
            self._backgrounds[key] = bg
            while len(self._backgrounds) > 2 * len(self.cameras):
                self._backgrounds.popitem(last=False)
        return bg

    def _noise_bank(self, lighting: Lighting) -> np.ndarray:
        """(2, H + 32, W + 32, 3) uint8: the positive and negative halves of Gaussian sensor noise."""
        with self._lock:
            bank = self._noise.get(lighting)
        if bank is None:
            rng = np.random.default_rng([self.seed, 0x4015E, list(Lighting).index(lighting)])
            h, w = self.size
            noise = rng.normal(0.0, LOOKS[lighting].noise_sigma, (h + _NOISE_PAD, w + _NOISE_PAD, 3)).astype(np.float32)
            bank = np.stack([np.clip(noise, 0, 255), np.clip(-noise, 0, 255)]).round().astype(np.uint8)
            with self._lock:
                self._noise[lighting] = bank
        return bank

    def _labels(self, ids: np.ndarray, painted: list[Painted]) -> tuple[Annotation, ...]:
        """Annotations from the (H, W) id buffer: the visible pixels of each painted object."""
        if not painted:
            return ()
        visible = cv2.calcHist([ids], [0], None, [256], [0, 256]).ravel()
        out = []
        for p in painted:
            area = int(visible[p.object_id])
            if p.object_id == OCCLUDER_ID or area < MIN_AREA_PX or area < MIN_VISIBLE * p.silhouette_px:
                continue
            x0, y0, x1, y1 = p.roi
            sub = ids[y0:y1, x0:x1] == p.object_id
            rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
            box = (float(x0 + cols[0]), float(y0 + rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1))
            if box[3] < MIN_HEIGHT_FRACTION * self.size[0]:
                continue
            mask = None
            if self.with_masks:
                mask = np.zeros(self.size, dtype=bool)
                mask[y0:y1, x0:x1] = sub
            out.append(Annotation(category_id=p.category, box=box, mask=mask, area=area, thing=p.thing))
        return tuple(out)


def _noise_offset(seed: int, t: int, camera: int) -> tuple[int, int]:
    """This frame's window into the noise bank: a fixed hash of (seed, t, camera)."""
    v = (t * 2654435761 + camera * 40503 + seed * 2246822519) & 0xFFFFFFFF
    v ^= v >> 15
    return v % _NOISE_PAD, (v >> 8) % _NOISE_PAD
