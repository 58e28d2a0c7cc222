"""Calibration data readers: every --data kind, seeded disjoint sampling, and bad input as DataError."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vitdeploy.bundle import Preprocessing, TensorSpec
from vitdeploy.calibration.data import DataKind, load_calibration_data
from vitdeploy.errors import DataError
from vitdeploy.runtime.preprocess import preprocess_frames

SIZE = (64, 96)
INPUTS = [TensorSpec("images", "float32", ["cameras", 3, *SIZE])]
SPEC = Preprocessing(image_size=SIZE)


def load(source, **kwargs):
    kwargs.setdefault("samples", 16)
    kwargs.setdefault("heldout", 4)
    return load_calibration_data(source, inputs=INPUTS, preprocessing=SPEC, **kwargs)


def frame(i: int, size=(120, 160)) -> np.ndarray:
    """A distinct RGB frame per i (a gradient plus a moving square)."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    img[..., 1] = (i * 37) % 256
    img[10 + i % 50: 40 + i % 50, 20:60, 2] = 255
    return img


def write_images(folder, n, *, start=0, suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        cv2.imwrite(str(folder / f"{i:04d}{suffix}"), cv2.cvtColor(frame(i), cv2.COLOR_RGB2BGR))


def rows(arr: np.ndarray) -> set[bytes]:
    return {a.tobytes() for a in arr}


def test_image_folder_is_read_recursively_and_preprocessed_like_the_runtime(tmp_path):
    write_images(tmp_path / "imgs", 12, suffix=".png")
    write_images(tmp_path / "imgs" / "more", 10, start=12, suffix=".png")
    write_images(tmp_path / "imgs" / "more", 2, start=22, suffix=".jpg")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    data = load(tmp_path / "imgs", samples=16, heldout=8)  # 24 images: every one is used
    assert data.kind is DataKind.IMAGES and data.samples == 16 and data.heldout_samples == 8
    cal, held = data.calibration["images"], data.heldout["images"]
    assert cal.shape == (16, 3, *SIZE) and cal.dtype == np.float32
    assert rows(cal).isdisjoint(rows(held)) and len(rows(cal) | rows(held)) == 24
    # the PNG samples are exactly what the runtime's preprocess_frames makes of those files
    assert rows(preprocess_frames([frame(i) for i in range(22)], SPEC)[0]) <= rows(cal) | rows(held)


def test_sampling_is_seeded_and_held_out_frames_are_disjoint(tmp_path):
    write_images(tmp_path / "imgs", 40)
    a, b, c = load(tmp_path / "imgs"), load(tmp_path / "imgs"), load(tmp_path / "imgs", seed=1)
    assert a.sha256 == b.sha256 and a.summary() == b.summary()
    assert a.sha256 != c.sha256
    assert rows(a.calibration["images"]).isdisjoint(rows(a.heldout["images"]))


def test_rig_recording_samples_every_camera(tmp_path):
    for k, cam in enumerate(("front", "rear", "left")):
        write_images(tmp_path / "rig" / cam, 10, start=100 * k)
    data = load(tmp_path / "rig", samples=16, heldout=5)
    assert data.kind is DataKind.RIG
    per_cam = {cam: rows(preprocess_frames([frame(100 * k + i) for i in range(10)], SPEC)[0])
               for k, cam in enumerate(("front", "rear", "left"))}
    cal = rows(data.calibration["images"])
    counts = [len(cal & r) for r in per_cam.values()]
    assert sum(counts) == 16 and min(counts) >= 5  # round-robin over cameras


def test_video_frames_are_sampled_evenly(tmp_path):
    path = tmp_path / "drive.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(60):
        writer.write(cv2.cvtColor(frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    data = load(path, samples=16, heldout=4)
    assert data.kind is DataKind.VIDEO and data.samples == 16 and data.heldout_samples == 4
    assert rows(data.calibration["images"]).isdisjoint(rows(data.heldout["images"]))


def test_npz_of_preprocessed_tensors(tmp_path):
    x = np.random.default_rng(0).standard_normal((30, 3, *SIZE)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", images=x)
    data = load(tmp_path / "calib.npz", samples=20, heldout=10)
    assert data.kind is DataKind.NPZ
    assert rows(data.calibration["images"]) | rows(data.heldout["images"]) == rows(x)


def test_synthetic_scenes_and_few_samples_warn(tmp_path):
    data = load("synthetic", samples=16, heldout=4)
    assert data.kind is DataKind.SYNTHETIC and data.calibration["images"].shape == (16, 3, *SIZE)
    assert any("below 128" in w for w in data.warnings)
    assert rows(data.calibration["images"]).isdisjoint(rows(data.heldout["images"]))


def test_fewer_frames_than_asked_shrinks_with_a_warning(tmp_path):
    write_images(tmp_path / "imgs", 30)
    data = load(tmp_path / "imgs", samples=256, heldout=32)
    assert data.samples + data.heldout_samples == 30 and data.heldout_samples >= 4
    assert any("fewer than" in w for w in data.warnings)


@pytest.mark.parametrize(("setup", "kwargs", "message"), [
    (lambda p: p.mkdir(), {}, "holds no images"),
    (lambda p: (write_images(p, 23), (p / "bad.jpg").write_bytes(b"not a jpeg")), {}, "cannot read image"),
    (lambda p: write_images(p, 5), {}, "has 5 frames; calibration needs at least 20"),
    (lambda p: write_images(p, 40), {"samples": 4}, "--samples 4 is too few"),
])
def test_bad_folders_are_data_errors(tmp_path, setup, kwargs, message):
    folder = tmp_path / "data"
    setup(folder)
    with pytest.raises(DataError, match=message):
        load(folder, **kwargs)


def test_unopenable_video_and_missing_path_are_data_errors(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(DataError, match="cannot open video"):
        load(tmp_path / "clip.mp4")
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nothing")


@pytest.mark.parametrize(("arrays", "message"), [
    ({"pixels": np.zeros((30, 3, *SIZE), np.float32)}, r"holds arrays \['pixels'\] but the graph's inputs are \['images'\]"),
    ({"images": np.zeros((30, 3, 32, 32), np.float32)}, r"has shape \(30, 3, 32, 32\), the graph takes Nx3x64x96"),
    ({"images": np.zeros((30, 3, *SIZE), np.uint8)}, "give preprocessed float32 tensors"),
])
def test_bad_npz_is_a_data_error(tmp_path, arrays, message):
    np.savez(tmp_path / "calib.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load(tmp_path / "calib.npz")
