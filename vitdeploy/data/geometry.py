"""Camera geometry: where a camera sits on the car and how it maps rays to pixels.

The frames are those of :mod:`vitdeploy.data.rig`. The ego frame is metres with x forward, y left,
z up and the origin on the ground under the rig. A camera's frame is x right, y down, z forward
(OpenCV); pixels are (u, v) = (column, row) with the origin at the top-left corner of the top-left
pixel, so the centre of pixel (i, j) is (j + 0.5, i + 0.5).

The mounting angles are the aerospace z-y-x (yaw, pitch, roll) angles of a body frame that looks
along the camera's optical axis with x forward, y left, z up, rotated from the ego frame:
``yaw`` turns it counter-clockwise seen from above (+90 looks left), ``pitch`` tilts it down
(+5 looks 5 degrees below the horizon), ``roll`` turns it about the optical axis, clockwise as
seen from behind the camera (so the horizon in its image rises to the right). These are right-handed
rotations about the ego z axis, the turned y axis and the turned x axis; the synthetic rig's
cameras have no roll and their ``yaw_deg``/``pitch_deg`` mean the same as here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from vitdeploy.data.rig import Camera
from vitdeploy.errors import DataError

#: Columns: the camera's right, down and forward axes in the body frame (x forward, y left, z up).
_BODY_FROM_CAMERA = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class CameraGeometry:
    """One calibrated camera of a rig.

    ``fx``/``fy`` (focal lengths) and ``cx``/``cy`` (principal point) are pixels of an image of
    ``image_size`` = (height, width); ``position`` is the optical centre, metres in the ego frame;
    the angles are degrees (module docstring). Pinhole, no skew, no lens distortion: undistort
    first.
    """

    name: str
    image_size: tuple[int, int]
    fx: float
    fy: float
    cx: float
    cy: float
    position: tuple[float, float, float]
    yaw_deg: float
    pitch_deg: float
    roll_deg: float = 0.0

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy, *self.position, self.yaw_deg, self.pitch_deg, self.roll_deg)
        if not all(math.isfinite(float(v)) for v in values):
            raise DataError(f"camera {self.name!r}: geometry has a non-finite value; give finite numbers")
        if not (self.fx > 0 and self.fy > 0):
            raise DataError(f"camera {self.name!r}: focal lengths fx={self.fx}, fy={self.fy} must be positive pixels")
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise DataError(f"camera {self.name!r}: image_size {self.image_size} must be (height, width) pixels")
        if len(self.position) != 3:
            raise DataError(f"camera {self.name!r}: position must be (x, y, z) metres, got {self.position}")

    # ---------------------------------------------------------------- matrices
    def intrinsic_matrix(self) -> np.ndarray:
        """(3, 3) K: pixels (u, v, 1) ~ K @ camera-frame point."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def rotation(self) -> np.ndarray:
        """(3, 3) camera -> ego rotation; its columns are the camera's right, down and forward
        axes in the ego frame."""
        return _body_rotation(self.yaw_deg, self.pitch_deg, self.roll_deg) @ _BODY_FROM_CAMERA

    def cam_to_ego(self) -> np.ndarray:
        """(4, 4) homogeneous transform of camera-frame metres into ego-frame metres."""
        out = np.eye(4)
        out[:3, :3] = self.rotation()
        out[:3, 3] = self.position
        return out

    def ego_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) ego-frame metres -> (..., 3) camera-frame metres."""
        return (np.asarray(points, np.float64) - np.asarray(self.position)) @ self.rotation()

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(..., 3) ego-frame metres -> ((..., 2) pixels (u, v), (...,) depth along the optical
        axis, metres). Points with depth <= 0 are behind the camera; their pixels mean nothing."""
        cam = self.ego_to_camera(points)
        z = cam[..., 2]
        safe = np.where(np.abs(z) > 1e-9, z, 1e-9)
        uv = np.stack([self.fx * cam[..., 0] / safe + self.cx, self.fy * cam[..., 1] / safe + self.cy], axis=-1)
        return uv, z

    def sees(self, points: np.ndarray, *, near_m: float = 0.3) -> np.ndarray:
        """(..., 3) ego-frame metres -> (...,) bool: in front of the camera and inside the image."""
        uv, z = self.project(points)
        h, w = self.image_size
        return (z > near_m) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)

    # ---------------------------------------------------------------- conversions
    def resized(self, image_size: tuple[int, int]) -> CameraGeometry:
        """The same camera for its image stretched to ``image_size`` = (height, width) pixels
        (the runtime's ``resize = "stretch"``): focal lengths and principal point scale with it."""
        h, w = (int(s) for s in image_size)
        sy, sx = h / self.image_size[0], w / self.image_size[1]
        return replace(self, image_size=(h, w), fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy)

    @classmethod
    def from_matrices(cls, *, name: str, image_size: tuple[int, int], intrinsics: np.ndarray,
                      cam_to_ego: np.ndarray, atol: float = 1e-4) -> CameraGeometry:
        """From a (3, 3) K and a (4, 4) camera -> ego transform (or its (3, 4) top rows).

        Refuses a K with skew or a last row other than (0, 0, 1), and a rotation that is not
        orthonormal with determinant +1 (within ``atol``): a mirrored or scaled matrix is a
        calibration mistake, not a camera.
        """
        k = np.asarray(intrinsics, np.float64)
        t = np.asarray(cam_to_ego, np.float64)
        if k.shape != (3, 3) or t.shape not in ((4, 4), (3, 4)):
            raise DataError(f"camera {name!r}: intrinsics must be 3x3 and cam_to_ego 4x4, got {k.shape} and {t.shape}")
        if abs(k[0, 1]) > atol or not np.allclose(k[2], (0.0, 0.0, 1.0), atol=atol) or abs(k[1, 0]) > atol:
            raise DataError(f"camera {name!r}: intrinsics {k.tolist()} are not [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
        if t.shape == (4, 4) and not np.allclose(t[3], (0.0, 0.0, 0.0, 1.0), atol=atol):
            raise DataError(f"camera {name!r}: the last row of cam_to_ego must be (0, 0, 0, 1), got {t[3].tolist()}")
        r = t[:3, :3]
        if not np.allclose(r.T @ r, np.eye(3), atol=atol) or np.linalg.det(r) < 0:
            raise DataError(f"camera {name!r}: the rotation of cam_to_ego is not a proper rotation "
                            "(orthonormal, determinant +1); check the matrix is camera -> ego, not scaled or mirrored")
        yaw, pitch, roll = _body_angles(r @ _BODY_FROM_CAMERA.T)
        return cls(name=name, image_size=(int(image_size[0]), int(image_size[1])), fx=float(k[0, 0]),
                   fy=float(k[1, 1]), cx=float(k[0, 2]), cy=float(k[1, 2]),
                   position=(float(t[0, 3]), float(t[1, 3]), float(t[2, 3])), yaw_deg=yaw, pitch_deg=pitch,
                   roll_deg=roll)

    @classmethod
    def from_rig_camera(cls, camera: Camera) -> CameraGeometry:
        """The geometry of a camera of the synthetic rig (:func:`vitdeploy.data.rig.rig_cameras`)."""
        cx, cy = camera.center_px
        x, y, z = (float(v) for v in camera.position)
        return cls(name=camera.name, image_size=camera.size, fx=camera.focal_px, fy=camera.focal_px, cx=cx, cy=cy,
                   position=(x, y, z), yaw_deg=camera.yaw_deg, pitch_deg=camera.pitch_deg)

    def to_dict(self) -> dict:
        return {"name": self.name, "image_size": list(self.image_size), "fx": self.fx, "fy": self.fy,
                "cx": self.cx, "cy": self.cy, "position": list(self.position), "yaw_deg": self.yaw_deg,
                "pitch_deg": self.pitch_deg, "roll_deg": self.roll_deg}

    @classmethod
    def from_dict(cls, d: dict) -> CameraGeometry:
        try:
            return cls(name=str(d["name"]), image_size=(int(d["image_size"][0]), int(d["image_size"][1])),
                       fx=float(d["fx"]), fy=float(d["fy"]), cx=float(d["cx"]), cy=float(d["cy"]),
                       position=tuple(float(v) for v in d["position"]),  # type: ignore[arg-type]
                       yaw_deg=float(d["yaw_deg"]), pitch_deg=float(d["pitch_deg"]),
                       roll_deg=float(d.get("roll_deg", 0.0)))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(f"camera geometry {d!r} is malformed: missing or bad {exc}") from None


def geometry_feed(cameras: Sequence[CameraGeometry], *, image_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The geometry inputs of a rig graph for images of ``image_size`` = (H, W) model-input pixels:
    ``intrinsics`` (C, 3, 3) and ``cam_to_ego`` (C, 4, 4), float32, in the cameras' order.

    Each camera's intrinsics are rescaled from its own ``image_size`` to the model input (the
    runtime stretches frames to it); a letterboxing runtime would also shift the principal point.
    """
    if not cameras:
        raise DataError("no cameras: a rig graph needs the geometry of at least one camera")
    scaled = [c.resized(image_size) for c in cameras]
    return {"intrinsics": np.stack([c.intrinsic_matrix() for c in scaled]).astype(np.float32),
            "cam_to_ego": np.stack([c.cam_to_ego() for c in scaled]).astype(np.float32)}


def _body_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """(3, 3) Rz(yaw) @ Ry(pitch) @ Rx(roll): body -> ego, all right-handed."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    cy, sy, cp, sp, cr, sr = math.cos(y), math.sin(y), math.cos(p), math.sin(p), math.cos(r), math.sin(r)
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    return rz @ ry @ rx


def _body_angles(r: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`_body_rotation`: (yaw, pitch, roll) degrees. At pitch +-90 (a camera
    looking straight down or up) yaw and roll are one rotation; roll is then reported as 0."""
    pitch = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    if abs(r[2, 0]) > 1 - 1e-9:
        return math.degrees(math.atan2(-r[0, 1], r[1, 1])), math.degrees(pitch), 0.0
    return (math.degrees(math.atan2(r[1, 0], r[0, 0])), math.degrees(pitch),
            math.degrees(math.atan2(r[2, 1], r[2, 2])))
