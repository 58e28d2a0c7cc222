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
from dataclasses import dataclass

import numpy as np

from vitdeploy.data.geometry import CameraGeometry
from vitdeploy.data.scenes import SceneGenerator, SynthFrame
from vitdeploy.data.world import Episode
from vitdeploy.heads.boxes3d import Boxes3D


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
