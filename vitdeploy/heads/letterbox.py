"""How a camera frame maps into the model input: preprocessing makes a ``Letterbox`` per frame,
a head's decoding uses it to put boxes and masks back into frame pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    def frame_region(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): the model-input pixels the frame covers (the rest is padding)."""
        frame_h, frame_w = self.frame_size
        x0, y0 = int(round(self.pad_x)), int(round(self.pad_y))
        return x0, y0, x0 + int(round(frame_w * self.scale_x)), y0 + int(round(frame_h * self.scale_y))
