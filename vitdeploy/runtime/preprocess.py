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
from vitdeploy.heads.letterbox import Letterbox

_INTERP = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class Geometry:
    """Where a frame of ``frame_size`` lands in the model input: resized to ``resized`` (h, w),
    then placed at (``left``, ``top``) on a canvas of the model size, pixels."""

    frame_size: tuple[int, int]
    resized: tuple[int, int]
    left: int
    top: int

    @property
    def letterbox(self) -> Letterbox:
        (fh, fw), (nh, nw) = self.frame_size, self.resized
        return Letterbox(nw / fw, nh / fh, float(self.left), float(self.top), (fh, fw))


def geometry(frame_size: tuple[int, int], spec: Preprocessing) -> Geometry:
    """The resize policy of ``spec`` for one frame size. The CPU path below and the fused graph
    (``exporter.fused_preprocess``) both take their geometry from here."""
    th, tw = spec.image_size
    fh, fw = frame_size
    if spec.resize == "stretch":
        return Geometry((fh, fw), (th, tw), 0, 0)
    if spec.resize not in ("letterbox", "longest_side"):
        raise DataError(f"unknown resize policy {spec.resize!r}; expected stretch, letterbox or longest_side")
    scale = min(th / fh, tw / fw)
    nh, nw = round(fh * scale), round(fw * scale)
    # letterbox centres the image; longest_side (Segment Anything) pads at the bottom/right
    top, left = ((th - nh) // 2, (tw - nw) // 2) if spec.resize == "letterbox" else (0, 0)
    return Geometry((fh, fw), (nh, nw), left, top)


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        shape = getattr(frame, "shape", None)
        raise DataError(f"a camera frame must be HxWx3 uint8, got shape {shape} dtype {getattr(frame, 'dtype', None)}")


def resize_frame(frame: np.ndarray, spec: Preprocessing) -> tuple[np.ndarray, Letterbox]:
    """frame (H, W, 3) uint8 RGB -> (h, w, 3) uint8 RGB at the model input size."""
    _check_frame(frame)
    th, tw = spec.image_size
    g = geometry(frame.shape[:2], spec)
    interp = _INTERP.get(spec.interpolation, cv2.INTER_LINEAR)
    nh, nw = g.resized
    resized = frame if (nh, nw) == frame.shape[:2] else cv2.resize(frame, (nw, nh), interpolation=interp)
    if (nh, nw) == (th, tw):
        return resized, g.letterbox
    canvas = np.full((th, tw, 3), spec.pad_value, np.uint8)
    canvas[g.top:g.top + nh, g.left:g.left + nw] = resized
    return canvas, g.letterbox


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
    """One batch along the camera axis: frames (each HxWx3 uint8 RGB) -> (N, 3, h, w) float32."""
    if not frames:
        raise DataError("no frames to preprocess")
    resized, boxes = zip(*(resize_frame(f, spec) for f in frames), strict=True)
    return normalize(np.stack(resized), spec), list(boxes)


def raw_frames(frames: list[np.ndarray], spec: Preprocessing, *, allow_resize: bool = False,
               orders: list[str] | None = None) -> tuple[np.ndarray, list[Letterbox]]:
    """For a graph with fused preprocessing: frames (each HxWx3 uint8, RGB or as ``orders`` say)
    -> the raw batch (N, Hs, Ws, 3) uint8 in the graph's source channel order; no resize or
    arithmetic on the CPU. A new array; the runtime fills a reused one (``fill_raw_batch``).
    """
    if not frames:
        raise DataError("no frames to preprocess")
    sh, sw = spec.source_size
    batch = np.empty((len(frames), sh, sw, 3), np.uint8)
    return batch, fill_raw_batch(frames, spec, out=batch, allow_resize=allow_resize, orders=orders)


def fill_raw_batch(frames: list[np.ndarray], spec: Preprocessing, *, out: np.ndarray, allow_resize: bool = False,
                   orders: list[str] | None = None) -> list[Letterbox]:
    """Copy frames (each HxWx3 uint8; channel order ``orders[i]``, default RGB) into ``out``
    (N, Hs, Ws, 3) uint8 in the graph's source channel order: one copy per frame, and a channel
    swap only for a frame whose order differs. Returns each frame's letterbox.

    A frame whose size differs from the declared source size is an error, unless
    ``allow_resize`` (then it is resized on the CPU, which is what fusing was meant to avoid).
    """
    sh, sw = spec.source_size
    want = spec.source_channel_order.upper()
    boxes = []
    for i, frame in enumerate(frames):
        _check_frame(frame)
        fh, fw = frame.shape[:2]
        if (fh, fw) != (sh, sw):
            if not allow_resize:
                raise DataError(f"frame {i} is {fh}x{fw}, but the bundle's graph takes raw {sh}x{sw} frames "
                                f"(--source-size at export); re-export for this camera or allow a CPU resize")
            frame = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
        order = orders[i].upper() if orders is not None else "RGB"
        if order != want:
            cv2.cvtColor(frame, cv2.COLOR_BGR2RGB, dst=out[i])  # the same swap both ways
        else:
            np.copyto(out[i], frame)
        boxes.append(raw_letterbox((fh, fw), spec))
    return boxes


def raw_letterbox(frame_size: tuple[int, int], spec: Preprocessing) -> Letterbox:
    """Where a camera frame of ``frame_size`` (h, w) lands in a fused graph's model input (the graph
    resizes its raw ``source_size`` frames; a frame of another size was resized to that first)."""
    sh, sw = spec.source_size
    fh, fw = frame_size
    lb = geometry((sh, sw), spec).letterbox
    return Letterbox(lb.scale_x * sw / fw, lb.scale_y * sh / fh, lb.pad_x, lb.pad_y, (fh, fw))


def prepare_batch(frames: list[np.ndarray], spec: Preprocessing, *, allow_resize: bool = False,
                  orders: list[str] | None = None) -> tuple[np.ndarray, list[Letterbox]]:
    """What the graph's input needs: normalised images, or raw frames when preprocessing is fused.
    ``orders``: each frame's channel order (default: all RGB)."""
    if spec.fused:
        return raw_frames(frames, spec, allow_resize=allow_resize, orders=orders)
    if orders is not None:
        frames = [np.ascontiguousarray(f[..., ::-1]) if o.upper() == "BGR" else f
                  for f, o in zip(frames, orders, strict=True)]
    return preprocess_frames(frames, spec)
