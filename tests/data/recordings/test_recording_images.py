"""Raw and compressed image payloads of recordings become the right RGB pixels."""

from __future__ import annotations

import numpy as np
import pytest
from recording_files import compress, frame

from vitdeploy.data.recordings import (
    CorruptFrameError,
    ImageMessageType,
    UnsupportedImageError,
    decode_compressed,
    raw_to_rgb,
)

#: four flat colour blocks: after demosaicing, every pixel away from block edges is exact
BLOCKS = np.zeros((32, 32, 3), np.uint8)
BLOCKS[:16, :16], BLOCKS[:16, 16:], BLOCKS[16:, :16], BLOCKS[16:, 16:] = (200, 30, 90), (10, 220, 40), (60, 70, 250), (128, 128, 128)
INTERIOR = [(slice(3, 13), slice(3, 13)), (slice(3, 13), slice(19, 29)), (slice(19, 29), slice(3, 13)),
            (slice(19, 29), slice(19, 29))]


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """What a Bayer sensor with ``pattern`` (e.g. "rggb": R at row 0 col 0) records of ``rgb``."""
    out = np.zeros(rgb.shape[:2], rgb.dtype)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_mosaics_demosaic_to_the_scene_colours(pattern):
    raw = mosaic(BLOCKS, pattern)
    image = raw_to_rgb(raw.tobytes(), width=32, height=32, step=32, encoding=f"bayer_{pattern}8")
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    for block in INTERIOR:
        np.testing.assert_array_equal(image[block], BLOCKS[block])


def test_bayer16_keeps_the_top_8_bits():
    raw = mosaic(BLOCKS.astype(np.uint16) * 256 + 77, "rggb")
    image = raw_to_rgb(raw.tobytes(), width=32, height=32, step=64, encoding="bayer_rggb16")
    for block in INTERIOR:
        np.testing.assert_array_equal(image[block], BLOCKS[block])


@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_either_byte_order(big_endian):
    grey = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 500
    data = grey.astype(">u2" if big_endian else "<u2").tobytes()
    image = raw_to_rgb(data, width=10, height=12, step=20, encoding="mono16", big_endian=big_endian)
    np.testing.assert_array_equal(image, np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, axis=2))


@pytest.mark.parametrize("encoding, convert", [
    ("rgb8", lambda im: im),
    ("bgr8", lambda im: im[..., ::-1]),
    ("rgba8", lambda im: np.concatenate([im, np.full(im.shape[:2] + (1,), 255, np.uint8)], -1)),
    ("bgra8", lambda im: np.concatenate([im[..., ::-1], np.zeros(im.shape[:2] + (1,), np.uint8)], -1)),
])
def test_colour_encodings_are_exact(encoding, convert):
    image = frame(3)
    raw = np.ascontiguousarray(convert(image))
    np.testing.assert_array_equal(raw_to_rgb(raw.tobytes(), width=32, height=24, step=raw.shape[1] * raw.shape[2],
                                         encoding=encoding), image)


def test_mono8_becomes_three_equal_channels():
    grey = frame(1)[..., 0]
    image = raw_to_rgb(grey.tobytes(), width=32, height=24, step=32, encoding="mono8")
    assert all(np.array_equal(image[..., c], grey) for c in range(3))


def test_padded_rows_are_cropped():
    image = frame(2)
    padded = np.concatenate([image.reshape(24, 96), np.full((24, 8), 255, np.uint8)], axis=1)
    np.testing.assert_array_equal(raw_to_rgb(padded.tobytes(), width=32, height=24, step=104, encoding="rgb8"), image)


def test_uyvy_and_yuyv_are_told_apart():
    luma = np.tile(np.linspace(20, 230, 16).astype(np.uint8), (4, 1))  # a grey ramp, 16 px wide
    uyvy = np.empty((4, 32), np.uint8)
    uyvy[:, 0::2], uyvy[:, 1::2] = 128, luma
    yuyv = np.empty((4, 32), np.uint8)
    yuyv[:, 0::2], yuyv[:, 1::2] = luma, 128
    a = raw_to_rgb(uyvy.tobytes(), width=16, height=4, step=32, encoding="uyvy")
    b = raw_to_rgb(yuyv.tobytes(), width=16, height=4, step=32, encoding="yuyv")
    np.testing.assert_array_equal(a, b)
    assert np.all(a[..., 0] == a[..., 1]) and np.all(np.diff(a[0, :, 0].astype(int)) > 0)  # grey, brightening


def test_short_payload_is_a_corrupt_frame():
    with pytest.raises(CorruptFrameError, match="needs 2304 bytes, the message holds 100"):
        raw_to_rgb(b"\0" * 100, width=32, height=24, step=96, encoding="rgb8")


def test_unknown_encoding_names_the_supported_ones():
    with pytest.raises(UnsupportedImageError, match="'32FC1' is not supported; vitdeploy reads rgb8, bgr8"):
        raw_to_rgb(b"\0" * 16, width=2, height=2, step=8, encoding="32FC1")


def test_compressed_png_is_exact_and_garbage_is_corrupt():
    np.testing.assert_array_equal(decode_compressed(compress(frame(4), "png")), frame(4))
    with pytest.raises(CorruptFrameError, match="cannot be decoded as JPEG, PNG or WebP"):
        decode_compressed(b"\xff\xd8 not really a jpeg")


@pytest.mark.parametrize("name, kind", [
    ("sensor_msgs/msg/CompressedImage", ImageMessageType.ROS_COMPRESSED),
    ("sensor_msgs/Image", ImageMessageType.ROS_IMAGE),  # the ROS 1 style name some recorders write
    ("foxglove.RawImage", ImageMessageType.FOXGLOVE_RAW),
    ("std_msgs/msg/String", None),
    ("", None),
])
def test_message_type_names(name, kind):
    assert ImageMessageType.of(name) is kind
