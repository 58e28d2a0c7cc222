"""The synthetic scene generator: deterministic, random access, exact labels, moving objects, COCO."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vitdeploy.data import CAMERA_NAMES, Lighting, SceneGenerator, load_coco, write_coco
from vitdeploy.data.scenes import MIN_AREA_PX
from vitdeploy.errors import DataError

SIZE = (160, 288)


def _same(a, b) -> bool:
    """Two SynthFrames with identical pixels and labels."""
    if a.camera != b.camera or a.index != b.index or a.timestamp != b.timestamp:
        return False
    if not np.array_equal(a.image, b.image) or len(a.annotations) != len(b.annotations):
        return False
    return all(
        x.category_id == y.category_id and x.box == y.box and x.area == y.area
        and (x.mask is None and y.mask is None or np.array_equal(x.mask, y.mask))
        for x, y in zip(a.annotations, b.annotations, strict=True)
    )


def test_camera_names_and_class_names_match_the_zoo():
    from vitdeploy.data.world import CLASS_NAMES
    from vitdeploy.models.zoo import DRIVING_CLASSES

    assert CAMERA_NAMES == ("front", "front_left", "front_right", "rear_left", "rear_right", "rear")
    assert CLASS_NAMES == DRIVING_CLASSES


def test_frame_shape_camera_and_time():
    g = SceneGenerator(size=SIZE, cameras=3, fps=20.0)
    f = g.frame(7, "front_right")
    assert f.image.shape == (*SIZE, 3) and f.image.dtype == np.uint8
    assert (f.camera, f.index, f.timestamp) == ("front_right", 7, 7 / 20.0)
    assert [x.camera for x in g.frame_set(7)] == ["front", "front_left", "front_right"]
    assert _same(g.frame(7, 2), f)


def test_same_seed_same_frames_and_labels_different_seed_differs():
    a, b = SceneGenerator(size=SIZE, seed=3), SceneGenerator(size=SIZE, seed=3)
    for t, cam in [(0, 0), (13, 5), (101, 2)]:
        assert _same(a.frame(t, cam), b.frame(t, cam))
    c = SceneGenerator(size=SIZE, seed=4)
    assert not np.array_equal(a.frame(13, 0).image, c.frame(13, 0).image)


def test_random_access_does_not_depend_on_what_was_rendered_before():
    fresh = SceneGenerator(size=SIZE, seed=1).frame(5, "front")
    warm = SceneGenerator(size=SIZE, seed=1)
    for t in range(5):
        warm.frame_set(t)
    warm.frame(300, "rear")  # another scene in between
    assert _same(warm.frame(5, "front"), fresh)


def test_boxes_lie_in_the_frame_and_equal_their_mask_extent():
    g = SceneGenerator(size=SIZE, seed=2)
    h, w = SIZE
    seen = 0
    for t in (0, 40, 95, 170):
        for f in g.frame_set(t):
            owner = np.zeros(SIZE, dtype=np.int32)
            for a in f.annotations:
                x, y, bw, bh = a.box
                assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
                assert a.mask.shape == SIZE and a.mask.dtype == bool
                ys, xs = np.nonzero(a.mask)
                assert (x, y, bw, bh) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
                assert a.area == int(a.mask.sum()) >= MIN_AREA_PX
                assert 0 <= a.category_id < 6
                owner += a.mask  # a visible pixel belongs to one object only
                seen += 1
            assert owner.max() <= 1
    assert seen > 20


def test_without_masks_gives_the_same_boxes():
    with_m = SceneGenerator(size=SIZE, seed=5).frame(12, 0)
    without = SceneGenerator(size=SIZE, seed=5, with_masks=False).frame(12, 0)
    assert np.array_equal(with_m.image, without.image)
    assert [a.box for a in with_m.annotations] == [a.box for a in without.annotations]
    assert all(a.mask is None for a in without.annotations)


def test_objects_move_between_consecutive_frames():
    g = SceneGenerator(size=SIZE, seed=0, with_masks=False)
    for cam in ("front", "rear"):
        a, b = g.frame(20, cam), g.frame(21, cam)
        boxes_a = {a_.box for a_ in a.annotations}
        boxes_b = {b_.box for b_ in b.annotations}
        assert boxes_a and boxes_a != boxes_b
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() > 0.5


def test_all_six_classes_appear_over_a_few_frames():
    g = SceneGenerator(seed=0, with_masks=False)
    classes = {a.category_id for t in range(0, 400, 40) for f in g.frame_set(t) for a in f.annotations}
    assert classes == set(range(6))


def test_night_is_darker_than_day():
    day = SceneGenerator(size=SIZE, seed=0, lighting=Lighting.DAY, with_masks=False)
    night = SceneGenerator(size=SIZE, seed=0, lighting=Lighting.NIGHT, with_masks=False)
    assert night.lighting_at(0) is Lighting.NIGHT
    lit, dark = day.frame(0, 0).image, night.frame(0, 0).image
    sky = slice(0, SIZE[0] // 4)
    assert dark[sky].mean() < 0.3 * lit[sky].mean()   # dark sky
    assert dark.mean() < 0.7 * lit.mean()              # the road ahead is lit by the headlights only


@pytest.mark.parametrize("kwargs", [{"size": (8, 8)}, {"cameras": 0}, {"cameras": 7}, {"fps": 0.0}])
def test_bad_generator_arguments_raise_data_error(kwargs):
    with pytest.raises(DataError):
        SceneGenerator(**kwargs)


def test_bad_camera_or_tick_raises_data_error():
    g = SceneGenerator(size=SIZE, cameras=2)
    for cam in ("rear", 2, -1):
        with pytest.raises(DataError, match="camera"):
            g.frame(0, cam)
    with pytest.raises(DataError, match="negative"):
        g.frame(-1, 0)


def test_write_coco_loads_in_faster_coco_eval_and_scores_ap_1_against_itself(tmp_path):
    from faster_coco_eval import COCO, COCOeval_faster

    calls = []
    path = write_coco(tmp_path / "ds", frames=3, cameras=2, size=SIZE, seed=0, stride=4,
                      progress=lambda done, total: calls.append((done, total)))
    assert path == tmp_path / "ds" / "annotations.json"
    assert calls[-1] == (6, 6)
    doc = json.loads(path.read_text())
    assert [c["id"] for c in doc["categories"]] == [1, 2, 3, 4, 5, 6]
    assert {im["frame_index"] for im in doc["images"]} == {0, 4, 8}
    im0 = doc["images"][0]
    assert (im0["camera"], im0["width"], im0["height"], im0["timestamp"]) == ("front", SIZE[1], SIZE[0], 0.0)
    assert (tmp_path / "ds" / im0["file_name"]).is_file()

    gt = COCO(str(path))
    assert len(gt.getAnnIds()) == len(doc["annotations"]) > 10
    for iou_type in ("bbox", "segm"):
        dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                 "segmentation": a["segmentation"], "score": 1.0} for a in doc["annotations"]]
        ev = COCOeval_faster(gt, gt.loadRes(dets), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)

    # the reader gives the same boxes, 0-based labels and image paths
    ds = load_coco(tmp_path / "ds")
    assert ds.categories[0] == "car" and len(ds.images) == 6
    assert sum(len(im.boxes) for im in ds.images) == len(doc["annotations"])
    frame = SceneGenerator(size=SIZE, seed=0, cameras=2).frame(4, "front_left")
    im = next(i for i in ds.images if i.camera == "front_left" and i.frame_index == 4)
    assert im.path.is_file()
    assert np.allclose(im.boxes, [a.box for a in frame.annotations], atol=0.01)
    assert im.labels.tolist() == [a.category_id for a in frame.annotations]


def test_write_coco_refuses_bad_input(tmp_path):
    with pytest.raises(DataError, match="at least 1 frame"):
        write_coco(tmp_path / "a", frames=0, cameras=1, size=SIZE, seed=0)
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        write_coco(afile, frames=1, cameras=1, size=SIZE, seed=0)
    with pytest.raises(DataError, match="COCO annotations"):
        load_coco(tmp_path / "missing")
