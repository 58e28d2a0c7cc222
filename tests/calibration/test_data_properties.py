"""The calibration-data readers on arbitrary files: data or a DataError, never another exception."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vitdeploy.bundle import Preprocessing, TensorSpec
from vitdeploy.calibration.data import MIN_HELDOUT, MIN_SAMPLES, load_calibration_data
from vitdeploy.errors import DataError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])
INPUTS = [TensorSpec("images", "float32", ["cameras", 3, 16, 16])]
PRE = Preprocessing(image_size=(16, 16))


def load(source) -> None:
    try:
        data = load_calibration_data(source, inputs=INPUTS, preprocessing=PRE, samples=MIN_SAMPLES,
                                     heldout=MIN_HELDOUT)
    except DataError:
        return
    assert data.calibration["images"].shape[1:] == (3, 16, 16)


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_an_npz(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("npz") / "calib.npz"
    path.write_bytes(data)
    load(path)


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_a_zip_member(tmp_path_factory, data):
    """A real zip (what np.load sees first) holding anything under an .npy name."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("images.npy", data)
    path = tmp_path_factory.mktemp("npz") / "calib.npz"
    path.write_bytes(buf.getvalue())
    load(path)


arrays = hnp.arrays(dtype=hnp.scalar_dtypes() | hnp.floating_dtypes(), shape=hnp.array_shapes(min_dims=0, max_dims=5,
                                                                                           max_side=4))


@FAST
@given(st.dictionaries(st.sampled_from(["images", "other", ""]), arrays, max_size=2))
def test_arbitrary_arrays_in_an_npz(tmp_path_factory, named):
    path = tmp_path_factory.mktemp("npz") / "calib.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **named)
    load(path)


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes_as_a_video(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("video") / "drive.mp4"
    path.write_bytes(data)
    load(path)


@FAST
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=3))
def test_arbitrary_bytes_among_the_images_of_a_folder(tmp_path_factory, blobs):
    import cv2

    folder = tmp_path_factory.mktemp("frames")
    good = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    for i in range(MIN_SAMPLES + MIN_HELDOUT):
        (folder / f"{i:03d}.png").write_bytes(good)
    for i, blob in enumerate(blobs):
        (folder / f"x{i}.jpg").write_bytes(blob)
    load(folder)
