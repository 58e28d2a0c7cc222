"""The synthetic camera rig: six pinhole cameras on one car, looking at a flat world.

World (ego) coordinates are metres with x forward, y left, z up and the origin on the ground under
the rig. A camera sits at ``height`` metres, turned by ``yaw`` (counter-clockwise seen from above,
so +55 degrees looks front-left) and tilted down by ``pitch``. Camera coordinates are x right,
y down, z forward (OpenCV), and pixels are (u, v) = (column, row) with the origin at the top-left
corner of the top-left pixel.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

#: The rig's cameras, in the order of ``SceneGenerator(cameras=N)``'s first N.
CAMERA_NAMES: tuple[str, ...] = ("front", "front_left", "front_right", "rear_left", "rear_right", "rear")

# (yaw in degrees, horizontal field of view in degrees), nuScenes-like mounting.
_MOUNTS: dict[str, tuple[float, float]] = {
    "front": (0.0, 64.0),
    "front_left": (55.0, 72.0),
    "front_right": (-55.0, 72.0),
    "rear_left": (110.0, 72.0),
    "rear_right": (-110.0, 72.0),
    "rear": (180.0, 72.0),
}

#: Points nearer than this to a camera plane (metres) are clipped away before projection.
NEAR_M = 0.3


@dataclass(frozen=True)
class Camera:
    """One pinhole camera of the rig for an image of ``size`` = (height, width) pixels."""

    name: str
    size: tuple[int, int]
    yaw_deg: float
    pitch_deg: float
    hfov_deg: float
    height_m: float

    @functools.cached_property
    def focal_px(self) -> float:
        return (self.size[1] / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    @functools.cached_property
    def center_px(self) -> tuple[float, float]:
        return self.size[1] / 2, self.size[0] / 2

    @functools.cached_property
    def position(self) -> np.ndarray:
        """(3,) metres, ego frame."""
        return np.array([0.0, 0.0, self.height_m])

    @functools.cached_property
    def rotation(self) -> np.ndarray:
        """(3, 3): rows are the camera's right, down and forward axes in the ego frame."""
        yaw, pitch = math.radians(self.yaw_deg), math.radians(self.pitch_deg)
        cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
        forward = (cp * cy, cp * sy, -sp)
        right = (sy, -cy, 0.0)
        down = (-sp * cy, -sp * sy, -cp)
        return np.array([right, down, forward])

    @functools.cached_property
    def horizon_v(self) -> float:
        """Image row (pixels) of the horizon; the camera has no roll, so it is horizontal."""
        return self.center_px[1] - self.focal_px * math.tan(math.radians(self.pitch_deg))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) ego-frame metres -> (..., 3) camera-frame metres (x right, y down, z forward)."""
        return (points - self.position) @ self.rotation.T

    def project(self, cam_points: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points with z > 0 -> (..., 2) pixels (u, v)."""
        f = self.focal_px
        cx, cy = self.center_px
        z = cam_points[..., 2:3]
        return cam_points[..., :2] * (f / z) + (cx, cy)

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(H', W', 3) ego-frame directions (not normalised) through pixel positions ``v`` (H',) x ``u`` (W',)."""
        f = self.focal_px
        cx, cy = self.center_px
        x = ((np.asarray(u, dtype=np.float32) - cx) / f)[None, :]
        y = ((np.asarray(v, dtype=np.float32) - cy) / f)[:, None]
        cam = np.stack(np.broadcast_arrays(x, y, np.float32(1.0)), axis=-1)
        return cam @ self.rotation.astype(np.float32)


def rig_cameras(size: tuple[int, int], *, count: int = 6, pitch_deg: float = 4.0,
                height_m: float = 1.55) -> tuple[Camera, ...]:
    """The first ``count`` cameras of :data:`CAMERA_NAMES` for images of ``size`` = (H, W) pixels."""
    return tuple(
        Camera(name=name, size=size, yaw_deg=_MOUNTS[name][0], pitch_deg=pitch_deg,
               hfov_deg=_MOUNTS[name][1], height_m=height_m)
        for name in CAMERA_NAMES[:count]
    )


def clip_polygon_near(poly: np.ndarray, near: float = NEAR_M) -> np.ndarray:
    """Clip a convex (N, 3) camera-frame polygon to z >= near (Sutherland-Hodgman, one plane).

    Returns (M, 3), M = 0 when the polygon lies wholly behind the plane.
    """
    out: list[np.ndarray] = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            s = (near - a[2]) / (b[2] - a[2])
            out.append(a + s * (b - a))
    return np.array(out) if out else np.zeros((0, 3))


def clip_hull_near(points: np.ndarray, near: float = NEAR_M) -> np.ndarray:
    """Points whose convex hull is the hull of ``points`` (K, 3) cut to z >= near.

    Every segment between two points of a convex body lies inside it, so the points in front
    plus the crossings of all front/behind pairs span exactly the clipped body.
    """
    front = points[:, 2] >= near
    a, b = points[front], points[~front]
    if len(a) == 0:
        return a
    s = (near - a[:, None, 2]) / (b[None, :, 2] - a[:, None, 2])
    cross = a[:, None, :] + s[..., None] * (b[None, :, :] - a[:, None, :])
    return np.concatenate([a, cross.reshape(-1, 3)])
