"""Calibration data from recordings: every image topic (or the named ones), frames evenly over
the drive, preprocessed exactly as the runtime does, damaged messages left out."""

from __future__ import annotations

import numpy as np
import pytest
from recording_files import T0, Msg, write_ros2_mcap

from vitdeploy.bundle import Preprocessing, TensorSpec
from vitdeploy.calibration.data import DataKind, load_calibration_data
from vitdeploy.errors import DataError
from vitdeploy.runtime.preprocess import preprocess_frames

SIZE = (64, 96)
INPUTS = [TensorSpec("images", "float32", ["cameras", 3, *SIZE])]
SPEC = Preprocessing(image_size=SIZE)
ROS_IMAGE = "sensor_msgs/msg/Image"


def frames(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


def drive(tmp_path):
    """Two cameras, 100 and 60 raw frames at 10 Hz."""
    a, b = frames(100, 1), frames(60, 2)
    topics = {"/cam_a/image_raw": (ROS_IMAGE, [Msg(T0 + k * 10**8, T0 + k * 10**8, f) for k, f in enumerate(a)]),
              "/cam_b/image_raw": (ROS_IMAGE, [Msg(T0 + k * 10**8, T0 + k * 10**8, f) for k, f in enumerate(b)])}
    return write_ros2_mcap(tmp_path / "drive.mcap", topics), a, b


def rows(arr: np.ndarray) -> list[bytes]:
    return [a.tobytes() for a in arr]


def load(source, **kwargs):
    return load_calibration_data(str(source), inputs=INPUTS, preprocessing=SPEC, **kwargs)


def test_frames_come_evenly_from_every_image_topic(tmp_path):
    path, a, b = drive(tmp_path)
    data = load(path, samples=16, heldout=4)
    assert data.kind is DataKind.RECORDING and data.samples == 16 and data.heldout_samples == 4
    index = {row: ("a", k) for k, row in enumerate(rows(preprocess_frames(a, SPEC)[0]))}
    index |= {row: ("b", k) for k, row in enumerate(rows(preprocess_frames(b, SPEC)[0]))}
    used = [index[r] for r in rows(data.calibration["images"]) + rows(data.heldout["images"])]
    # 10 frames per topic, first and last included, evenly over each drive
    assert sorted(k for cam, k in used if cam == "a") == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]
    assert sorted(k for cam, k in used if cam == "b") == [0, 7, 13, 20, 26, 33, 39, 46, 52, 59]
    again = load(path, samples=16, heldout=4)
    assert again.sha256 == data.sha256 and load(path, samples=16, heldout=4, seed=1).sha256 != data.sha256


def test_named_topics_only(tmp_path):
    path, a, _ = drive(tmp_path)
    data = load(f"{path}#/cam_a/image_raw", samples=16, heldout=4)
    allowed = set(rows(preprocess_frames(a, SPEC)[0]))
    assert set(rows(data.calibration["images"])) <= allowed and set(rows(data.heldout["images"])) <= allowed
    with pytest.raises(DataError, match="has no topic '/nope'; its image topics are /cam_a/image_raw, /cam_b/image_raw"):
        load(f"{path}#/nope", samples=16, heldout=4)
    with pytest.raises(DataError, match=r"recording .*missing.mcap does not exist"):
        load(tmp_path / "missing.mcap", samples=16, heldout=4)
