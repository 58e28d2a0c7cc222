"""Camera frame -> model input, as the manifest's ``Preprocessing`` says.

The runtime, calibration and the exporter's photo parity case all call this one function, so INT8
scales are computed on exactly what the deployed model will see.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vitdeploy.bundle.manifest import Preprocessing
from vitdeploy.errors import DataError

_INTERP = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class Letterbox:
    """How a frame maps into the model input: input = frame * scale + (pad_x, pad_y), pixels."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    frame_size: tuple[int, int]  # (H, W) of the original frame

    def to_frame(self, xyxy: np.ndarray) -> np.ndarray:
        """Boxes (..., 4) x1,y1,x2,y2 in model-input pixels -> frame pixels, clipped to the frame."""
        out = xyxy.astype(np.float32).copy()
        out[..., 0::2] = (out[..., 0::2] - self.pad_x) / self.scale_x
        out[..., 1::2] = (out[..., 1::2] - self.pad_y) / self.scale_y
        out[..., 0::2] = out[..., 0::2].clip(0, self.frame_size[1])
        out[..., 1::2] = out[..., 1::2].clip(0, self.frame_size[0])
        return out


def resize_frame(frame: np.ndarray, spec: Preprocessing) -> tuple[np.ndarray, Letterbox]:
    """frame (H, W, 3) uint8 RGB -> (h, w, 3) uint8 RGB at the model input size."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise DataError(f"a camera frame must be HxWx3 uint8, got shape {frame.shape} dtype {frame.dtype}")
    th, tw = spec.image_size
    fh, fw = frame.shape[:2]
    interp = _INTERP.get(spec.interpolation, cv2.INTER_LINEAR)
    if spec.resize == "stretch":
        out = frame if (fh, fw) == (th, tw) else cv2.resize(frame, (tw, th), interpolation=interp)
        return out, Letterbox(tw / fw, th / fh, 0.0, 0.0, (fh, fw))
    if spec.resize not in ("letterbox", "longest_side"):
        raise DataError(f"unknown resize policy {spec.resize!r}; expected stretch, letterbox or longest_side")
    scale = min(th / fh, tw / fw)
    nh, nw = round(fh * scale), round(fw * scale)
    resized = cv2.resize(frame, (nw, nh), interpolation=interp)
    canvas = np.full((th, tw, 3), spec.pad_value, np.uint8)
    # letterbox centres the image; longest_side (Segment Anything) pads at the bottom/right
    py, px = ((th - nh) // 2, (tw - nw) // 2) if spec.resize == "letterbox" else (0, 0)
    canvas[py:py + nh, px:px + nw] = resized
    return canvas, Letterbox(nw / fw, nh / fh, float(px), float(py), (fh, fw))


def normalize(images: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """uint8 RGB (N, h, w, 3) -> float32 (N, 3, h, w) in the model's channel order: /255, minus
    mean, over std (mean/std are given in the model's channel order)."""
    if spec.channel_order.upper() == "BGR":
        images = images[..., ::-1]
    mean = np.asarray(spec.mean, np.float32) * 255.0
    inv_std = 1.0 / (np.asarray(spec.std, np.float32) * 255.0)
    x = (images.astype(np.float32) - mean) * inv_std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def preprocess_frames(frames: list[np.ndarray], spec: Preprocessing) -> tuple[np.ndarray, list[Letterbox]]:
    """One batch along the camera axis: frames (each HxWx3 uint8) -> (N, 3, h, w) float32."""
    if not frames:
        raise DataError("no frames to preprocess")
    resized, boxes = zip(*(resize_frame(f, spec) for f in frames), strict=True)
    return normalize(np.stack(resized), spec), list(boxes)
