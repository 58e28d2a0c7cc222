"""Evaluation data: the synthetic spec, COCO files (boxes and masks), image folders, bad input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vitdeploy.data import SceneGenerator, write_coco
from vitdeploy.errors import DataError
from vitdeploy.evaluation.datasets import BACKGROUND, EVAL_SEED, class_mapping, open_dataset

SIZE = (64, 96)


def test_synthetic_spec_is_the_held_out_drive_with_exact_labels():
    data = open_dataset("synthetic:frames=3,cameras=2,stride=5", image_size=SIZE)
    assert len(data) == 3 and data.task == "detection" and data.class_names[0] == "car"
    images = list(data.images(masks=True))
    gen = SceneGenerator(size=SIZE, cameras=2, seed=EVAL_SEED)
    # image 2 is tick 5 (the second used tick), camera 0
    expected = gen.frame(5, 0)
    assert images[2].name == f"{expected.camera}/000005"
    np.testing.assert_array_equal(images[2].image, expected.image)
    x, y, w, h = expected.annotations[0].box
    np.testing.assert_allclose(images[2].boxes[0], [x, y, x + w, y + h])
    sem = images[2].semantic
    assert sem.shape == SIZE and (sem[expected.annotations[0].mask] == expected.annotations[0].category_id).all()
    assert list(data.images())[0].semantic is None  # masks only when asked for


def test_frames_option_overrides_the_spec_and_size_can_be_given():
    data = open_dataset("synthetic:frames=50,size=48x80", image_size=SIZE, frames=2)
    assert len(data) == 2 and next(data.images()).image.shape == (48, 80, 3)


def test_coco_folder_gives_the_same_boxes_and_masks_as_the_generator(tmp_path):
    write_coco(tmp_path, frames=1, cameras=2, size=SIZE, seed=3)
    data = open_dataset(tmp_path, image_size=(1, 1))
    assert len(data) == 2 and data.has_masks
    gen = SceneGenerator(size=SIZE, cameras=2, seed=3)
    for im, frame in zip(data.images(masks=True), gen.frame_set(0), strict=True):
        assert im.image.shape == (*SIZE, 3)
        want = np.asarray([[x, y, x + w, y + h] for x, y, w, h in (a.box for a in frame.annotations)]).reshape(-1, 4)
        np.testing.assert_allclose(im.boxes, want, atol=0.01)
        want_sem = np.full(SIZE, BACKGROUND, np.uint8)
        for a in frame.annotations:
            want_sem[a.mask] = a.category_id
        np.testing.assert_array_equal(im.semantic, want_sem)


def test_coco_polygons_are_painted(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 8}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 2, 4, 4], "area": 16,
                            "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]]}],
           "categories": [{"id": 7, "name": "car"}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 10, 3), np.uint8))
    (im,) = list(open_dataset(tmp_path / "ann.json", image_size=SIZE).images(masks=True))
    np.testing.assert_allclose(im.boxes, [[2, 2, 6, 6]])
    assert (im.semantic == 0).sum() == 16 and im.semantic[3, 3] == 0 and im.semantic[0, 0] == BACKGROUND


@pytest.mark.parametrize(("spec", "content", "message"), [
    ("{tmp}/nothing", None, "does not exist"),
    ("{tmp}/list.json", "[1, 2]", "not a COCO detection file"),
    ("{tmp}/broken.json", "{", "cannot read"),
    ("{tmp}/empty", "", "neither annotations.json"),
    ("synthetic:speed=3", None, "not one of"),
    ("synthetic:frames=x", None, "integers"),
    ("synthetic:size=big", None, "HEIGHTxWIDTH"),
    ("synthetic:cameras=9", None, "cameras=9"),
])
def test_bad_data_is_a_data_error(tmp_path, spec, content, message):
    spec = spec.replace("{tmp}", str(tmp_path))
    if content is not None and spec.endswith(".json"):
        (tmp_path / spec.rsplit("/", 1)[1]).write_text(content)
    elif content is not None:
        (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=message):
        open_dataset(spec, image_size=SIZE)


def test_class_names_must_be_the_models():
    data = open_dataset("synthetic:frames=1", image_size=SIZE)
    reordered = ("truck", "car", "pedestrian", "cyclist", "traffic_cone", "traffic_light", "bus")
    assert class_mapping(data, reordered).tolist() == [1, 0, 2, 3, 4, 5]  # matched by name, not position
    with pytest.raises(DataError, match=r"\['traffic_light'\] are not the model's"):
        class_mapping(data, reordered[:5])
