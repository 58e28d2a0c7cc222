"""Camera geometry in the rig file, and the geometry feed a rig-level model gets once per rig."""

import dataclasses

import numpy as np
import pytest

from vitdeploy.bundle.manifest import Preprocessing
from vitdeploy.data.geometry import CameraGeometry
from vitdeploy.data.rig import rig_cameras
from vitdeploy.errors import RigConfigError
from vitdeploy.runtime.rig import GeometrySource, parse_rig, synthetic_rig
from vitdeploy.runtime.rig_geometry import geometry_inputs, model_input_geometry, rig_inputs

FRONT_LEFT = CameraGeometry.from_rig_camera(rig_cameras((256, 448))[1])


def rig_text(geometry: str, *, name: str = "front_left", extra: str = "") -> str:
    return (f'{extra}[[cameras]]\nname = "{name}"\nsource = "synthetic://{name}"\nfps = 10\nresolution = [256, 448]\n'
            f"{geometry}")


def as_toml(matrix) -> str:
    return "[" + ", ".join("[" + ", ".join(repr(float(v)) for v in row) + "]" for row in matrix) + "]"


def test_a_camera_is_given_by_position_and_angles_or_by_its_matrix_alike():
    g = FRONT_LEFT
    angles = parse_rig(rig_text(
        f"[cameras.geometry]\nfx = {g.fx}\nfy = {g.fy}\ncx = {g.cx}\ncy = {g.cy}\n"
        f"position = {list(g.position)}\nyaw_deg = {g.yaw_deg}\npitch_deg = {g.pitch_deg}\n")).cameras[0].geometry
    matrix = parse_rig(rig_text(
        f"[cameras.geometry]\nimage_size = [256, 448]\nfx = {g.fx}\nfy = {g.fy}\ncx = {g.cx}\ncy = {g.cy}\n"
        f"cam_to_ego = {as_toml(g.cam_to_ego())}\n")).cameras[0].geometry
    assert angles == dataclasses.replace(g, name="front_left")
    np.testing.assert_allclose(matrix.cam_to_ego(), g.cam_to_ego(), atol=1e-9)
    np.testing.assert_allclose(matrix.intrinsic_matrix(), g.intrinsic_matrix())
    assert parse_rig(rig_text("")).cameras[0].geometry is None  # geometry is optional in the file


@pytest.mark.parametrize(("geometry", "message"), [
    ("[cameras.geometry]\nfx = 300\nfy = 300\ncx = 224\ncy = 128\nposition = [0, 0, 1.5]\nyaw_deg = 0\npitch_deg = 0\n"
     "cam_to_ego = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]\n", "not both"),
    ("[cameras.geometry]\nfy = 300\ncx = 224\ncy = 128\nposition = [0, 0, 1.5]\nyaw_deg = 0\npitch_deg = 0\n",
     r"cameras\[0\].geometry.fx: missing"),
    ("[cameras.geometry]\nfx = 300\nfy = 300\ncx = 224\ncy = 128\nposition = [0, 1.5]\nyaw_deg = 0\npitch_deg = 0\n",
     r"geometry.position: expected 3 numbers"),
    ("[cameras.geometry]\nfx = 300\nfy = 300\ncx = 224\ncy = 128\n"
     "cam_to_ego = [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]\n", "not a proper rotation"),
])
def test_a_malformed_geometry_names_the_field(geometry, message):
    with pytest.raises(RigConfigError, match=message):
        parse_rig(rig_text(geometry))


def test_the_feed_follows_the_frame_through_the_letterbox():
    pre = Preprocessing(image_size=(64, 96), resize="letterbox")
    seen = model_input_geometry(FRONT_LEFT, pre)  # 256x448 is resized to 55x96 and put 4 rows down
    points = np.array([[12.0, 8.0, 0.5], [30.0, 20.0, 2.0]])
    uv, _ = FRONT_LEFT.project(points)
    uv_model, _ = seen.project(points)
    np.testing.assert_allclose(uv_model, uv * [96 / 448, 55 / 256] + [0, 4], atol=1e-9)
    feed = geometry_inputs([FRONT_LEFT, FRONT_LEFT], pre)
    assert feed["intrinsics"].shape == (2, 3, 3) and feed["cam_to_ego"].shape == (2, 4, 4)
    assert feed["intrinsics"].dtype == np.float32


def test_a_rig_model_refuses_a_rig_without_geometry_or_of_another_size(rig3d_bundle):
    m = rig3d_bundle.manifest
    rig = synthetic_rig(6, size=(64, 96))
    feed = rig_inputs(rig, m)
    np.testing.assert_allclose(feed["cam_to_ego"][1], FRONT_LEFT.cam_to_ego(), atol=1e-6)
    bare = dataclasses.replace(rig, cameras=tuple(dataclasses.replace(c, geometry=None) for c in rig.cameras))
    with pytest.raises(RigConfigError, match=r"camera 'front' has no geometry.*\[model\] geometry = \"exported\""):
        rig_inputs(bare, m)
    fallback = dataclasses.replace(bare, model=dataclasses.replace(bare.model, geometry=GeometrySource.EXPORTED))
    np.testing.assert_allclose(rig_inputs(fallback, m)["intrinsics"], feed["intrinsics"], rtol=1e-6)
    with pytest.raises(RigConfigError, match="the rig has 4 cameras.*answers for a rig of 6 .front, front_left"):
        rig_inputs(synthetic_rig(4, size=(64, 96)), m)


def test_a_per_camera_model_takes_no_geometry(bundle):
    assert rig_inputs(synthetic_rig(2, size=(64, 96)), bundle.manifest) == {}
