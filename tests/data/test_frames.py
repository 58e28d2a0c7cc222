"""One set of frame readers: every image suffix vitdeploy lists is read by `run`'s image-folder
source and by `calibrate`'s data loader alike (they once disagreed: .bmp ran but did not calibrate)."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from vitdeploy.bundle import Preprocessing, TensorSpec
from vitdeploy.calibration.data import DataKind, load_calibration_data
from vitdeploy.data.frames import IMAGE_SUFFIXES, read_image
from vitdeploy.errors import DataError
from vitdeploy.runtime.rig import Camera
from vitdeploy.runtime.sources import open_source

LOSSY = (".jpg", ".jpeg", ".webp")


def frames(n: int) -> list[np.ndarray]:
    """Distinct 48x64 RGB frames: a bright square that moves, on a dark background."""
    out = []
    for i in range(n):
        f = np.full((48, 64, 3), 30, np.uint8)
        f[8:24, 2 * i:2 * i + 16] = (200, 120, 40)
        out.append(f)
    return out


def run_frames(folder, count: int) -> list[np.ndarray]:
    """What `vitdeploy run`'s source for ``folder`` delivers, in order."""
    src = open_source(Camera("cam", str(folder), fps=100), paced=False)
    got, end = [], time.monotonic() + 10
    src.start()
    try:
        while len(got) < count and time.monotonic() < end:
            f = src.newest()
            if f is not None and (not got or f.index > got[-1][0]):
                got.append((f.index, f.image))
                src.take(f)
            time.sleep(0.002)
    finally:
        src.stop()
    return [image for _, image in got]


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_every_suffix_runs_and_calibrates(tmp_path, suffix):
    written = frames(20)
    for i, f in enumerate(written):
        assert cv2.imwrite(str(tmp_path / f"{i:03d}{suffix.upper() if i % 2 else suffix}"),
                           cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    got = run_frames(tmp_path, 20)
    assert len(got) == 20
    for a, b in zip(got, written, strict=True):
        assert a.shape == b.shape and a.dtype == np.uint8
        diff = np.abs(a.astype(int) - b)
        assert diff.mean() < 2 if suffix in LOSSY else diff.max() == 0  # in order, colours as written (RGB)
    data = load_calibration_data(tmp_path, inputs=[TensorSpec("images", "float32", ["cameras", 3, 32, 32])],
                                 preprocessing=Preprocessing(image_size=(32, 32)), samples=16, heldout=4)
    assert data.kind is DataKind.IMAGES and data.samples == 16 and data.heldout_samples == 4


def test_an_undecodable_image_is_one_clear_error(tmp_path):
    bad = tmp_path / "frame.bmp"
    bad.write_bytes(b"BM not really")
    with pytest.raises(DataError, match=r"cannot read image .*frame.bmp: not a decodable image"):
        read_image(bad)
    with pytest.raises(DataError, match="cannot read image"):
        read_image(tmp_path / "missing.png")
