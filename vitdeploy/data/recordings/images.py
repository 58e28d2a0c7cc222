"""Camera images inside recordings: which message types carry them and how a payload becomes RGB.

Four message types are read, whichever library decoded them (``mcap-ros2-support`` and ``rosbags``
give ROS 2 messages with the same field names, ``mcap-protobuf-support`` gives protobuf messages):

=================================  ================================================================
``sensor_msgs/msg/CompressedImage``  ``format`` jpeg or png (image_transport's ``"bgr8; jpeg
                                     compressed bgr8"`` too); ``header.stamp``
``sensor_msgs/msg/Image``            raw pixels; the encodings in ``RAW_ENCODINGS``; ``header.stamp``
``foxglove.CompressedImage``         ``format`` jpeg, png or webp; ``timestamp``
``foxglove.RawImage``                raw pixels, same encodings (little-endian); ``timestamp``
=================================  ================================================================

JPEG/PNG payloads are decoded in one place, ``decode_compressed``.
"""

from __future__ import annotations

import enum

import cv2
import numpy as np

from vitdeploy.data.frames import decode_image
from vitdeploy.errors import DataError


class CorruptFrameError(DataError):
    """One message whose image cannot be decoded (a damaged payload, a size that does not add up);
    a reader can skip it and read on."""


class UnsupportedImageError(DataError):
    """A message type or pixel encoding vitdeploy does not read; every message of the topic is alike."""


class ImageMessageType(str, enum.Enum):
    """The message types that carry camera images, by the name recordings give them."""

    ROS_COMPRESSED = "sensor_msgs/msg/CompressedImage"
    ROS_IMAGE = "sensor_msgs/msg/Image"
    FOXGLOVE_COMPRESSED = "foxglove.CompressedImage"
    FOXGLOVE_RAW = "foxglove.RawImage"

    @classmethod
    def of(cls, type_name: str) -> ImageMessageType | None:
        """The image type called ``type_name`` (``sensor_msgs/CompressedImage``, the ROS 1 style
        name some ROS 2 recorders write, counts too), or None for a type that is not an image."""
        pkg, sep, name = type_name.partition("/")
        if sep and "/" not in name:
            type_name = f"{pkg}/msg/{name}"
        try:
            return cls(type_name)
        except ValueError:
            return None


SUPPORTED_TYPES = ", ".join(t.value for t in ImageMessageType)

# encoding -> (pixel dtype, channels per pixel, OpenCV conversion to RGB or None when already RGB).
# OpenCV names a Bayer pattern by its second row (cv_bridge's table): rggb is BayerBG, and so on.
RAW_ENCODINGS: dict[str, tuple[type, int, int | None]] = {
    "rgb8": (np.uint8, 3, None),
    "bgr8": (np.uint8, 3, cv2.COLOR_BGR2RGB),
    "8UC3": (np.uint8, 3, cv2.COLOR_BGR2RGB),  # cv_bridge's convention: 3 unnamed channels are BGR
    "rgba8": (np.uint8, 4, cv2.COLOR_RGBA2RGB),
    "bgra8": (np.uint8, 4, cv2.COLOR_BGRA2RGB),
    "mono8": (np.uint8, 1, cv2.COLOR_GRAY2RGB),
    "8UC1": (np.uint8, 1, cv2.COLOR_GRAY2RGB),
    "mono16": (np.uint16, 1, cv2.COLOR_GRAY2RGB),
    "16UC1": (np.uint16, 1, cv2.COLOR_GRAY2RGB),
    "bayer_rggb8": (np.uint8, 1, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": (np.uint8, 1, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": (np.uint8, 1, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": (np.uint8, 1, cv2.COLOR_BayerGB2RGB),
    "bayer_rggb16": (np.uint16, 1, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr16": (np.uint16, 1, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg16": (np.uint16, 1, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg16": (np.uint16, 1, cv2.COLOR_BayerGB2RGB),
    "uyvy": (np.uint8, 2, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422": (np.uint8, 2, cv2.COLOR_YUV2RGB_UYVY),  # ROS's name for UYVY
    "yuyv": (np.uint8, 2, cv2.COLOR_YUV2RGB_YUY2),
    "yuv422_yuy2": (np.uint8, 2, cv2.COLOR_YUV2RGB_YUY2),
}


def message_image(kind: ImageMessageType, message: object) -> tuple[int | None, np.ndarray]:
    """The stamp (ns in the recording's clock, None when the message carries none) and the image,
    (H, W, 3) uint8 RGB, of one decoded image message of type ``kind``."""
    if kind is ImageMessageType.ROS_COMPRESSED or kind is ImageMessageType.ROS_IMAGE:
        stamp = message.header.stamp
        stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    else:
        stamp_ns = message.timestamp.seconds * 1_000_000_000 + message.timestamp.nanos
    if kind is ImageMessageType.ROS_COMPRESSED or kind is ImageMessageType.FOXGLOVE_COMPRESSED:
        if "compresseddepth" in message.format.lower():
            raise UnsupportedImageError(f"compressedDepth images ({message.format!r}) are depth maps, not camera "
                                        "frames; use the camera's colour image topic")
        image = decode_compressed(message.data)
    else:
        image = raw_to_rgb(message.data, width=message.width, height=message.height, step=message.step,
                           encoding=message.encoding, big_endian=bool(getattr(message, "is_bigendian", False)))
    return (stamp_ns or None), image


def decode_compressed(data: bytes | np.ndarray) -> np.ndarray:
    """A JPEG, PNG or WebP payload as an (H, W, 3) uint8 RGB image (16-bit PNGs scaled to 8 bits,
    grey ones expanded to 3 channels). The one place recordings decode compressed images."""
    image = decode_image(data)  # the frame readers every command shares (vitdeploy.data.frames)
    if image is None:
        size = len(data) if isinstance(data, bytes | bytearray) else np.asarray(data).size
        raise CorruptFrameError(f"a {size}-byte compressed image payload cannot be decoded as JPEG, PNG or WebP")
    return image


def encode_compressed(image: np.ndarray, *, fmt: str, jpeg_quality: int = 90) -> bytes:
    """An (H, W, 3) uint8 RGB image as JPEG (``fmt="jpeg"``, ``jpeg_quality`` 1-100) or PNG bytes."""
    ext, params = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]) if fmt == "jpeg" else (".png", [])
    ok, buf = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DataError(f"OpenCV cannot encode a {image.shape} image as {fmt}")
    return buf.tobytes()


def raw_to_rgb(data: bytes | np.ndarray, *, width: int, height: int, step: int, encoding: str,
               big_endian: bool = False) -> np.ndarray:
    """Raw pixels (rows of ``step`` bytes, ``encoding`` one of ``RAW_ENCODINGS``) as an (H, W, 3)
    uint8 RGB image. Bayer mosaics are demosaiced (OpenCV bilinear); 16-bit images keep their top
    8 bits."""
    if encoding not in RAW_ENCODINGS:
        raise UnsupportedImageError(f"raw image encoding {encoding!r} is not supported; vitdeploy reads "
                                    f"{', '.join(RAW_ENCODINGS)}")
    dtype, channels, code = RAW_ENCODINGS[encoding]
    itemsize = np.dtype(dtype).itemsize
    row = width * channels * itemsize
    step = step or row
    if width <= 0 or height <= 0 or step < row or step % itemsize:
        raise CorruptFrameError(f"a {encoding} image of {width}x{height} pixels cannot have rows of {step} bytes "
                                f"(a row needs at least {row})")
    buf = np.frombuffer(data, np.uint8)
    if buf.size < step * height:
        raise CorruptFrameError(f"a {encoding} image of {width}x{height} pixels needs {step * height} bytes, "
                                f"the message holds {buf.size}")
    rows = np.ascontiguousarray(buf[: step * height].reshape(height, step)[:, :row])
    pixels = rows.view(np.dtype(dtype).newbyteorder(">" if big_endian else "<")).astype(dtype, copy=False)
    pixels = pixels.reshape(height, width, channels) if channels > 1 else pixels.reshape(height, width)
    try:
        image = cv2.cvtColor(pixels, code) if code is not None else pixels
    except cv2.error as exc:  # e.g. UYVY with an odd width
        raise CorruptFrameError(f"a {encoding} image of {width}x{height} pixels cannot be converted to RGB: "
                                f"{str(exc).strip().splitlines()[-1]}") from exc
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    return np.ascontiguousarray(image)
