"""The rig-level Perceiver-IO head: one answer per frame set, geometry as input, clear refusals."""

import numpy as np
import pytest
import torch

from vitdeploy.data.geometry import CameraGeometry, geometry_feed
from vitdeploy.data.rig import rig_cameras
from vitdeploy.errors import DataError, ModelNotFoundError
from vitdeploy.models.heads.rig3d import RayPositionEncoding
from vitdeploy.models.rig_model import RIG3D_MODELS, get_rig3d

SPEC = get_rig3d("vit-test-rig3d")


def _feed(cameras: int, *, pitch_deg: float = 4.0, seed: int = 0) -> tuple[torch.Tensor, ...]:
    geo = [CameraGeometry.from_rig_camera(c) for c in rig_cameras(SPEC.image_size, count=cameras, pitch_deg=pitch_deg)]
    g = geometry_feed(geo, image_size=SPEC.image_size)
    images = torch.from_numpy(np.random.default_rng(seed).standard_normal((cameras, 3, *SPEC.image_size), np.float32))
    return images, torch.from_numpy(g["intrinsics"]), torch.from_numpy(g["cam_to_ego"])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SPEC.build().eval()


@pytest.mark.parametrize("cameras", [1, 6])
def test_a_frame_set_gets_one_answer_in_the_ego_frame(model, cameras):
    with torch.no_grad():
        out = model(*_feed(cameras))
    q, k = SPEC.head.num_queries, SPEC.head.num_classes
    assert out["logits"].shape == (1, q, k + 1) and out["boxes3d"].shape == (1, q, 8)
    lo, hi = torch.tensor(SPEC.head.ego_range[:3]), torch.tensor(SPEC.head.ego_range[3:])
    centres = out["boxes3d"][0, :, :3]
    assert ((centres >= lo) & (centres <= hi)).all()
    assert (out["boxes3d"][0, :, 3:6] > 0).all()


def test_the_explicit_attention_path_computes_the_same(model):
    explicit = SPEC.build(fused_attention=False).eval()
    explicit.load_state_dict(model.state_dict())
    feed = _feed(6)
    with torch.no_grad():
        a, b = model(*feed), explicit(*feed)
    for name in model.output_names:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4)


def test_the_answer_depends_on_the_calibration(model):
    images, intr, ext = _feed(6, pitch_deg=4.0)
    _, _, ext_recalibrated = _feed(6, pitch_deg=5.0)
    with torch.no_grad():
        a = model(images, intr, ext)["logits"]
        b = model(images, intr, ext_recalibrated)["logits"]
    assert not torch.allclose(a, b, atol=1e-6)


def test_a_batch_of_frame_sets_is_the_same_as_one_at_a_time(model):
    feeds = [_feed(3, seed=s) for s in (1, 2)]
    with torch.no_grad():
        batched = model.forward_layers(*(torch.stack(parts) for parts in zip(*feeds, strict=True)))[-1]
        single = [model(*f) for f in feeds]
    for i, one in enumerate(single):
        torch.testing.assert_close(batched["boxes3d"][i], one["boxes3d"][0], atol=1e-4, rtol=1e-4)


def test_a_feed_that_disagrees_on_the_camera_count_is_refused(model):
    images, intr, ext = _feed(6)
    with pytest.raises(DataError, match="disagrees on the camera count"):
        model(images, intr[:5], ext)
    with pytest.raises(DataError, match="disagrees on the camera count"):
        model(images[:4], intr[:4], ext[:5])
    many = torch.cat([images, images[:1]]), torch.cat([intr, intr[:1]]), torch.cat([ext, ext[:1]])
    with pytest.raises(DataError, match="at most 6"):
        model(*many)


def test_ray_points_run_along_the_optical_axis_through_the_principal_point():
    enc = RayPositionEncoding(8, patch_size=16, depth_bins=4, max_depth_m=61.0, ego_range=(-50, -50, -2, 50, 50, 4))
    # principal point on the centre of the first patch, camera looking left (yaw 90) from 1.5 m
    cam = CameraGeometry(name="left", image_size=(32, 32), fx=20.0, fy=20.0, cx=8.0, cy=8.0,
                         position=(0.5, 0.0, 1.5), yaw_deg=90.0, pitch_deg=0.0)
    intr = torch.tensor(cam.intrinsic_matrix(), dtype=torch.float32)[None, None]
    ext = torch.tensor(cam.cam_to_ego(), dtype=torch.float32)[None, None]
    points = enc.ray_points(intr, ext, (2, 2))[0, 0]  # (N=4, D=4, 3)
    depths = torch.tensor([1.0, 11.0, 31.0, 61.0])  # 1 + 60 / (4 * 3) * i (i + 1): denser near the car
    torch.testing.assert_close(enc.depths, depths)
    torch.testing.assert_close(points[0], torch.stack([torch.full((4,), 0.5), depths, torch.full((4,), 1.5)], -1))
    # the next patch (16 px further along u) is 16/20 m per metre of depth to the camera's right,
    # which for a camera looking left is the car's front (ego +x)
    torch.testing.assert_close(points[1, 0], torch.tensor([0.5 + 0.8, 1.0, 1.5]))


def test_every_named_rig_model_builds_and_unknown_names_are_refused():
    for name, spec in RIG3D_MODELS.items():
        assert spec.name == name and spec.head.num_classes == len(spec.class_names)
    with pytest.raises(ModelNotFoundError, match="vit-tiny-rig3d"):
        get_rig3d("vit-tiny-rig")
