"""Camera frames from files: the image suffixes vitdeploy reads, image decoding, and video reading.

``vitdeploy run`` (image-folder and video sources), ``calibrate`` (image folders, rig recordings,
videos) and ``eval`` (class folders) all read frames through here, so a file one command accepts
the others accept too. Frames are (H, W, 3) uint8 RGB. OpenCV decodes; bytes are read with numpy,
so paths OpenCV's own file functions mishandle (non-ASCII names) work as well.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from vitdeploy.errors import DataError

#: Image files vitdeploy reads as camera frames (lower-case suffixes; matching ignores case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def is_image(path: Path) -> bool:
    """Whether ``path`` is a file with one of ``IMAGE_SUFFIXES``."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def images_in(folder: Path, *, recursive: bool = False) -> list[Path]:
    """The image files in ``folder`` (and its sub-folders with ``recursive``), sorted by path."""
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in Path(folder).glob(pattern) if is_image(p))


def decode_image(data: bytes | np.ndarray) -> np.ndarray | None:
    """Encoded image bytes (JPEG, PNG, BMP, TIFF, WebP) -> (H, W, 3) uint8 RGB, or None when they do
    not decode."""
    buffer = np.frombuffer(data, np.uint8) if isinstance(data, bytes | bytearray) else np.asarray(data, np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image(path: Path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB; a ``DataError`` says why it cannot be read."""
    path = Path(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    image = decode_image(data)
    if image is None:
        raise DataError(f"cannot read image {path}: not a decodable image (corrupt, truncated or misnamed); "
                        "remove or replace it")
    return image


def sample_photo() -> np.ndarray:
    """A real photograph, (H, W, 3) uint8 RGB: Grace Hopper (a U.S. Navy photograph in the public
    domain; the sample matplotlib ships, shipped here too so the car side needs no matplotlib). Export
    parity and the engine golden check feed it: random inputs alone hide errors real images show."""
    return read_image(Path(__file__).parent / "photos" / "grace_hopper.jpg")


def open_video(path: Path, *, threads: int | None = None) -> cv2.VideoCapture:
    """An opened OpenCV capture of the video file ``path``; a ``DataError`` when it cannot be opened.
    ``threads``: the decoder's threads (None: OpenCV's choice, one per core)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"video file {path} does not exist")
    params = [] if threads is None else [cv2.CAP_PROP_N_THREADS, int(threads)]
    cap = cv2.VideoCapture(str(path), cv2.CAP_ANY, params)
    if not cap.isOpened():
        cap.release()
        raise DataError(f"cannot open video {path} with OpenCV (not a video, or a codec OpenCV lacks); "
                        "give an mp4/avi/mov it can decode, or an image folder")
    return cap


def read_video_frame(cap: cv2.VideoCapture) -> np.ndarray | None:
    """The next frame of ``cap`` as (H, W, 3) uint8 RGB; None at the end."""
    ok, bgr = cap.read()
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok and bgr is not None else None


def count_video_frames(path: Path) -> int:
    """Frames in the video: the container's count, or (where it does not say) counted by decoding."""
    cap = open_video(path)
    try:
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:
            count = 0
            while cap.grab():
                count += 1
    finally:
        cap.release()
    return count


def video_frames(path: Path, indices: Sequence[int]) -> Iterator[np.ndarray]:
    """Frames ``indices`` of the video, in that order. Decodes sequentially (seeking is unreliable
    across codecs) and keeps only the frames asked for."""
    wanted = sorted(set(indices))
    frames: dict[int, np.ndarray] = {}
    cap = open_video(path)
    try:
        pos = 0
        for idx in wanted:
            while pos < idx:
                if not cap.grab():
                    break
                pos += 1
            frame = read_video_frame(cap)
            if frame is None:
                raise DataError(f"video {path} ends or is corrupt at frame {idx}; re-encode it or give an image folder")
            pos += 1
            frames[idx] = frame
    finally:
        cap.release()
    for i in indices:
        yield frames[i]
