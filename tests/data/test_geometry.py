"""Camera geometry: the synthetic rig's conventions, matrix round trips, resizing, refusals."""

import math

import numpy as np
import pytest

from vitdeploy.data.geometry import CameraGeometry, geometry_feed
from vitdeploy.data.rig import rig_cameras
from vitdeploy.errors import DataError


def _camera(**kw) -> CameraGeometry:
    base = {"name": "cam", "image_size": (256, 448), "fx": 300.0, "fy": 310.0, "cx": 224.0, "cy": 128.0,
            "position": (1.0, 0.5, 1.5), "yaw_deg": 0.0, "pitch_deg": 0.0}
    return CameraGeometry(**{**base, **kw})


def test_the_synthetic_rig_projects_as_the_renderer_does():
    points = np.random.default_rng(0).uniform((-40, -40, 0), (40, 40, 4), (200, 3))
    for cam in rig_cameras((256, 448), count=6, pitch_deg=4.5):
        geo = CameraGeometry.from_rig_camera(cam)
        cam_points = cam.to_camera(points)
        uv, depth = geo.project(points)
        front = cam_points[:, 2] > 0.5
        np.testing.assert_allclose(depth, cam_points[:, 2], atol=1e-9)
        np.testing.assert_allclose(uv[front], cam.project(cam_points[front]), atol=1e-6)


def test_yaw_pitch_roll_mean_what_the_docstring_says():
    # yaw +90 looks left: a point to the left at camera height lands in the image centre
    left = _camera(yaw_deg=90.0, position=(0.0, 0.0, 1.5))
    uv, depth = left.project(np.array([0.0, 10.0, 1.5]))
    np.testing.assert_allclose(uv, (224.0, 128.0), atol=1e-9)
    assert depth == pytest.approx(10.0)
    # pitch +10 looks down: the point straight ahead at camera height is above the centre
    down = _camera(pitch_deg=10.0, position=(0.0, 0.0, 1.5))
    uv, _ = down.project(np.array([10.0, 0.0, 1.5]))
    assert uv[1] == pytest.approx(128.0 - 310.0 * math.tan(math.radians(10.0)))
    # roll +10 turns the camera clockwise seen from behind: the horizon rises to the right
    rolled = _camera(roll_deg=10.0, position=(0.0, 0.0, 1.5))
    uv, _ = rolled.project(np.array([[20.0, -5.0, 1.5], [20.0, 5.0, 1.5]]))
    assert uv[0, 0] > 224.0 and uv[0, 1] < 128.0  # right of centre, above
    assert uv[1, 0] < 224.0 and uv[1, 1] > 128.0  # left of centre, below


@pytest.mark.parametrize("angles", [(0.0, 0.0, 0.0), (55.0, 4.0, 0.0), (-110.0, 12.5, -3.0), (179.0, -20.0, 7.5)])
def test_matrices_round_trip_to_the_same_camera(angles):
    yaw, pitch, roll = angles
    cam = _camera(yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll)
    back = CameraGeometry.from_matrices(name="cam", image_size=cam.image_size, intrinsics=cam.intrinsic_matrix(),
                                        cam_to_ego=cam.cam_to_ego())
    for field in ("fx", "fy", "cx", "cy", "yaw_deg", "pitch_deg", "roll_deg"):
        assert getattr(back, field) == pytest.approx(getattr(cam, field), abs=1e-9), field
    assert back.position == pytest.approx(cam.position)
    assert CameraGeometry.from_dict(cam.to_dict()) == cam


def test_resizing_scales_pixels_and_keeps_the_rays():
    cam = _camera(yaw_deg=30.0, pitch_deg=5.0)
    small = cam.resized((128, 224))
    points = np.random.default_rng(1).uniform((5, -10, 0), (30, 10, 3), (50, 3))
    uv, _ = cam.project(points)
    uv_small, _ = small.project(points)
    np.testing.assert_allclose(uv_small, uv * (224 / 448, 128 / 256), atol=1e-9)


def test_geometry_feed_is_float32_per_camera_in_model_input_pixels():
    cams = [CameraGeometry.from_rig_camera(c) for c in rig_cameras((512, 896), count=3)]
    feed = geometry_feed(cams, image_size=(256, 448))
    assert feed["intrinsics"].shape == (3, 3, 3) and feed["cam_to_ego"].shape == (3, 4, 4)
    assert feed["intrinsics"].dtype == np.float32 and feed["cam_to_ego"].dtype == np.float32
    assert feed["intrinsics"][0, 0, 2] == pytest.approx(224.0)  # cx of a centred camera at 448 wide
    with pytest.raises(DataError, match="at least one camera"):
        geometry_feed([], image_size=(256, 448))


def test_a_mirrored_or_skewed_calibration_is_refused():
    cam = _camera()
    mirrored = cam.cam_to_ego()
    mirrored[:3, 0] *= -1
    with pytest.raises(DataError, match="not a proper rotation"):
        CameraGeometry.from_matrices(name="cam", image_size=(256, 448), intrinsics=cam.intrinsic_matrix(),
                                     cam_to_ego=mirrored)
    skewed = cam.intrinsic_matrix()
    skewed[0, 1] = 2.0
    with pytest.raises(DataError, match="fx, 0, cx"):
        CameraGeometry.from_matrices(name="cam", image_size=(256, 448), intrinsics=skewed, cam_to_ego=cam.cam_to_ego())
    with pytest.raises(DataError, match="focal lengths"):
        _camera(fx=0.0)
    with pytest.raises(DataError, match="malformed"):
        CameraGeometry.from_dict({"name": "cam"})
