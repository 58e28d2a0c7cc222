"""Synthetic 3D labels: exact poses, the cameras that see each object, the file and its reader."""

import json
import math

import numpy as np
import pytest

from vitdeploy.data.boxes3d import Boxes3D, object_box, render_rig_sample
from vitdeploy.data.rig import clip_hull_near
from vitdeploy.data.rig_dataset import load_rig_dataset, write_rig_dataset
from vitdeploy.data.scenes import SceneGenerator
from vitdeploy.errors import DataError


def _corners(center, size, yaw) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float) / 2
    local = signs * size
    c, s = math.cos(yaw), math.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return local @ rot.T + center


@pytest.fixture(scope="module")
def sample():
    return render_rig_sample(SceneGenerator(size=(128, 224), cameras=6, seed=3, with_masks=False), 40)


def test_every_labelled_object_is_one_box_with_the_cameras_that_label_it(sample):
    boxes = sample.boxes
    labelled = {(f.camera, a.thing) for f in sample.frames for a in f.annotations}
    things = sorted({t for _, t in labelled})
    assert len(boxes) == len(things) > 5
    assert len(set(boxes.ids.tolist())) == len(boxes)
    assert any(len(c) > 1 for c in boxes.cameras), "some object should be seen by two cameras"
    for k, thing in enumerate(things):
        assert set(boxes.cameras[k]) == {cam for cam, t in labelled if t == thing}
    for f in sample.frames:  # the 3D class is the 2D class
        for a in f.annotations:
            assert boxes.labels[things.index(a.thing)] == a.category_id


def test_each_box_lands_in_the_images_of_its_cameras(sample):
    geometry = {g.name: g for g in sample.geometry}
    for k in range(len(sample.boxes)):
        corners = _corners(sample.boxes.centers[k], sample.boxes.sizes[k], sample.boxes.yaws[k])
        for name in sample.boxes.cameras[k]:
            g = geometry[name]
            front = clip_hull_near(g.ego_to_camera(corners))
            assert len(front), f"box {k} is behind camera {name}"
            uv = front[:, :2] * (g.fx, g.fy) / front[:, 2:3] + (g.cx, g.cy)
            h, w = g.image_size
            assert uv[:, 0].max() > 0 and uv[:, 0].min() < w and uv[:, 1].max() > 0 and uv[:, 1].min() < h


def test_a_box_is_the_shape_at_rest_standing_on_the_ground():
    gen = SceneGenerator(size=(128, 224), cameras=1, seed=5, with_masks=False)
    episode, tau, _ = gen.scene_at(12)
    k = next(i for i, t in enumerate(episode.things) if t.category == 0 and abs(t.heading - math.pi) < 1e-9)
    center, size, yaw = object_box(episode, k, tau)
    verts = episode.things[k].shape.vertices
    np.testing.assert_allclose(size, np.ptp(verts, axis=0))
    assert center[2] == pytest.approx(size[2] / 2, abs=0.02)  # the car's lowest vertex is on the ground
    assert abs(yaw) == pytest.approx(math.pi)
    mid = (verts.min(0) + verts.max(0)) / 2  # heading pi turns the shape's centre offset around
    np.testing.assert_allclose(center[:2], episode.positions(tau)[k] - mid[:2], atol=1e-9)


def test_the_dataset_round_trips_through_its_file(tmp_path):
    path = write_rig_dataset(tmp_path / "drive", frames=2, cameras=2, size=(64, 96), seed=3, stride=5)
    doc = json.loads(path.read_text())
    assert doc["info"]["size_order"] == "length, width, height"
    data = load_rig_dataset(tmp_path / "drive")
    assert data.cameras == ("front", "front_left") and len(data.samples) == 2
    assert data.categories[0] == "car"
    gen = SceneGenerator(size=(64, 96), cameras=2, seed=3, with_masks=False)
    for record, tick in zip(data.samples, (0, 5), strict=True):
        truth = render_rig_sample(gen, tick)
        assert record.frame_index == tick and all(p.exists() for p in record.images)
        assert record.geometry == truth.geometry
        np.testing.assert_allclose(record.boxes.centers, truth.boxes.centers, atol=1e-4)
        np.testing.assert_allclose(record.boxes.sizes, truth.boxes.sizes, atol=1e-4)
        np.testing.assert_array_equal(record.boxes.labels, truth.boxes.labels)
        assert record.boxes.cameras == truth.boxes.cameras


def test_a_missing_or_foreign_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no 3D labels"):
        load_rig_dataset(tmp_path)
    (tmp_path / "boxes3d.json").write_text(json.dumps({"info": {"format": "coco"}, "categories": [], "samples": []}))
    with pytest.raises(DataError, match="not 'vitdeploy-boxes3d/1'"):
        load_rig_dataset(tmp_path)
    with pytest.raises(DataError, match="at least 1 frame set"):
        write_rig_dataset(tmp_path / "x", frames=0)


def test_boxes_refuse_mismatched_arrays_and_write_records():
    with pytest.raises(ValueError, match="centers"):
        Boxes3D(np.zeros((2, 3)), np.zeros((1, 3)), np.zeros(1), np.zeros(1, np.int64), np.zeros(1))
    b = Boxes3D(np.array([[3.0, 4.0, 0.5]]), np.array([[4.0, 2.0, 1.5]]), np.array([0.25]), np.array([0]),
                np.array([0.9]))
    assert b.ego_distance() == pytest.approx([5.0])
    assert b.to_records(["car"]) == [{"label": "car", "class_id": 0, "score": 0.9, "center": [3.0, 4.0, 0.5],
                                      "size": [4.0, 2.0, 1.5], "yaw": 0.25}]
