"""3D boxes in the ego frame: the container, and the ground truth of a synthetic frame set.

The scene generator knows every object's pose, so the 3D label of an object is exact: its centre,
size and heading from the shape it was painted with. A frame set's ground truth holds the objects
that at least one camera labels (the 2D rules of :mod:`vitdeploy.data.scenes`: enough visible
pixels, not too small), each with the cameras that label it. This plays the part of nuScenes'
rule that a box needs at least one lidar or radar point.

Sizes are (length, width, height): length along the object's heading, width across it (nuScenes
stores width, length, height). Yaw is the heading in radians, counter-clockwise from the ego x
axis seen from above. Centres are the middle of the box, so z is half the height for an object
standing on the ground.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vitdeploy.data.geometry import CameraGeometry
from vitdeploy.data.scenes import SceneGenerator, SynthFrame
from vitdeploy.data.world import Episode
from vitdeploy.heads.results import SetResult, class_name


@dataclass(frozen=True, eq=False)
class Boxes3D(SetResult):
    """Boxes of one frame set, ego frame: the ``SetResult`` of a rig-level 3D head.

    ``centers`` (K, 3) metres; ``sizes`` (K, 3) length, width, height metres; ``yaws`` (K,)
    radians; ``labels`` (K,) class indices; ``scores`` (K,) 0..1 (1 for ground truth);
    ``cameras`` per box the names of the cameras that see it (ground truth; empty for
    predictions); ``ids`` (K,) object ids, stable across the ticks of one scene (-1: unknown).
    """

    centers: np.ndarray
    sizes: np.ndarray
    yaws: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    cameras: tuple[tuple[str, ...], ...] = ()
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        k = len(self.labels)
        shapes = {"centers": (k, 3), "sizes": (k, 3), "yaws": (k,), "scores": (k,)}
        for name, want in shapes.items():
            if np.shape(getattr(self, name)) != want:
                raise ValueError(f"Boxes3D.{name} has shape {np.shape(getattr(self, name))}, expected {want}")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls) -> Boxes3D:
        return cls(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.int64), np.zeros(0, np.float32))

    def ego_distance(self) -> np.ndarray:
        """(K,) distance of each centre from the ego origin in the ground plane, metres."""
        return np.hypot(self.centers[:, 0], self.centers[:, 1])

    def to_records(self, class_names: Sequence[str]) -> list[dict]:
        """JSON-ready boxes: label, class_id, score, center, size, yaw (and cameras, id when known)."""
        out = []
        for i in range(len(self)):
            label = int(self.labels[i])
            rec = {"label": class_name(class_names, label), "class_id": label,
                   "score": round(float(self.scores[i]), 4),
                   "center": [round(float(v), 3) for v in self.centers[i]],
                   "size": [round(float(v), 3) for v in self.sizes[i]], "yaw": round(float(self.yaws[i]), 4)}
            if self.cameras:
                rec["cameras"] = list(self.cameras[i])
            if len(self.ids):
                rec["id"] = int(self.ids[i])
            out.append(rec)
        return out


@dataclass(frozen=True, eq=False)
class RigSample:
    """One frame set of a synthetic drive: the cameras' frames (in rig order), their geometry,
    and the 3D ground truth."""

    tick: int
    timestamp: float
    frames: tuple[SynthFrame, ...]
    geometry: tuple[CameraGeometry, ...]
    boxes: Boxes3D


def object_box(episode: Episode, thing: int, tau: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Thing ``thing`` of ``episode`` at ``tau`` seconds: (centre (3,), size (3,), yaw).

    The box is the extent of the shape's vertices at rest (a walker's swinging limbs are not
    followed), turned by the thing's heading and placed at its position on the ground.
    """
    t = episode.things[thing]
    verts = t.shape.vertices
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    mid = (lo + hi) / 2
    c, s = math.cos(t.heading), math.sin(t.heading)
    x, y = episode.positions(tau)[thing]
    center = np.array([x + c * mid[0] - s * mid[1], y + s * mid[0] + c * mid[1], mid[2]])
    return center, hi - lo, float(math.remainder(t.heading, 2 * math.pi))


def frame_set_boxes(frames: Sequence[SynthFrame], episode: Episode, tau: float) -> Boxes3D:
    """The 3D ground truth of one tick's ``frames``: every object labelled in at least one of them."""
    seen: dict[int, list[str]] = {}
    for frame in frames:
        for a in frame.annotations:
            cams = seen.setdefault(a.thing, [])
            if frame.camera not in cams:
                cams.append(frame.camera)
    if not seen:
        return Boxes3D.empty()
    things = sorted(seen)
    poses = [object_box(episode, k, tau) for k in things]
    return Boxes3D(centers=np.array([p[0] for p in poses], np.float32),
                   sizes=np.array([p[1] for p in poses], np.float32),
                   yaws=np.array([p[2] for p in poses], np.float32),
                   labels=np.array([episode.things[k].category for k in things], np.int64),
                   scores=np.ones(len(things), np.float32),
                   cameras=tuple(tuple(seen[k]) for k in things),
                   ids=np.array([episode.index * 10_000 + k for k in things], np.int64))


def render_rig_sample(generator: SceneGenerator, t: int) -> RigSample:
    """Render every camera of ``generator`` at tick ``t`` with the frame set's 3D ground truth."""
    episode, tau, cams = generator.scene_at(t)
    frames = tuple(generator.frame_set(t))
    return RigSample(tick=int(t), timestamp=t / generator.fps, frames=frames,
                     geometry=tuple(CameraGeometry.from_rig_camera(c) for c in cams),
                     boxes=frame_set_boxes(frames, episode, tau))
