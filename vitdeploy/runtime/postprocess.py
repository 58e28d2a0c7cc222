"""Raw head outputs -> what a perception engineer looks at: boxes in frame pixels, masks, labels.

Decoding is kept out of the model (DETR's habit), so the same graph serves every threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vitdeploy.runtime.preprocess import Letterbox


@dataclass
class Detections:
    """Detections of one camera frame. boxes (K, 4) x1, y1, x2, y2 in frame pixels; scores (K,)
    in 0..1; labels (K,) class indices; masks (K, H, W) bool at frame size, or None."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def to_records(self, class_names: list[str]) -> list[dict]:
        out = []
        for box, score, label in zip(self.boxes, self.scores, self.labels, strict=True):
            name = class_names[label] if 0 <= label < len(class_names) else str(int(label))
            out.append({"label": name, "class_id": int(label), "score": round(float(score), 4),
                        "box": [round(float(v), 1) for v in box]})
        return out


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _select(probs: np.ndarray, *, score_threshold: float, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """probs (Q, C+1) with the 'no object' class last -> (query index, score, label) kept."""
    scores = probs[:, :-1].max(axis=-1)
    labels = probs[:, :-1].argmax(axis=-1)
    keep = np.flatnonzero(scores >= score_threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")][:top_k]
    return keep, scores[keep], labels[keep]


def cxcywh_to_xyxy(boxes: np.ndarray, *, width: float, height: float) -> np.ndarray:
    """(..., 4) normalised cx, cy, w, h -> x1, y1, x2, y2 in pixels of a width x height image."""
    cx, cy, w, h = np.moveaxis(boxes.astype(np.float32), -1, 0)
    return np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], -1)


def decode_detr(logits: np.ndarray, boxes: np.ndarray, *, input_size: tuple[int, int],
                letterboxes: list[Letterbox] | None = None, score_threshold: float = 0.3,
                top_k: int = 100) -> list[Detections]:
    """logits (N, Q, C+1), boxes (N, Q, 4) normalised cxcywh -> one ``Detections`` per camera.

    Without ``letterboxes`` the boxes stay in model-input pixels.
    """
    h, w = input_size
    probs = _softmax(logits)
    out = []
    for i in range(logits.shape[0]):
        keep, scores, labels = _select(probs[i], score_threshold=score_threshold, top_k=top_k)
        xyxy = cxcywh_to_xyxy(boxes[i, keep], width=w, height=h)
        if letterboxes is not None:
            xyxy = letterboxes[i].to_frame(xyxy)
        out.append(Detections(xyxy.reshape(-1, 4), scores.astype(np.float32), labels.astype(np.int64)))
    return out


def decode_masks(logits: np.ndarray, masks: np.ndarray, *, input_size: tuple[int, int],
                 letterboxes: list[Letterbox] | None = None, score_threshold: float = 0.3,
                 top_k: int = 50) -> list[Detections]:
    """logits (N, Q, C+1), masks (N, Q, h, w) mask logits at the stride -> instance masks.

    Masks are upsampled to the model input, then mapped back to the frame (letterbox undone);
    boxes are the masks' extents.
    """
    h, w = input_size
    probs = _softmax(logits)
    out = []
    for i in range(logits.shape[0]):
        keep, scores, labels = _select(probs[i], score_threshold=score_threshold, top_k=top_k)
        lb = letterboxes[i] if letterboxes is not None else None
        frame_h, frame_w = lb.frame_size if lb is not None else (h, w)
        full = np.zeros((len(keep), frame_h, frame_w), bool)
        for j, q in enumerate(keep):
            m = cv2.resize(masks[i, q].astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            if lb is not None:
                x0, y0 = int(round(lb.pad_x)), int(round(lb.pad_y))
                x1 = x0 + int(round(frame_w * lb.scale_x))
                y1 = y0 + int(round(frame_h * lb.scale_y))
                m = cv2.resize(m[y0:y1, x0:x1], (frame_w, frame_h), interpolation=cv2.INTER_LINEAR)
            full[j] = m > 0.0
        boxes = np.zeros((len(keep), 4), np.float32)
        for j in range(len(keep)):
            ys, xs = np.nonzero(full[j])
            if len(xs):
                boxes[j] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        out.append(Detections(boxes, scores.astype(np.float32), labels.astype(np.int64), full))
    return out


def decode_classification(logits: np.ndarray, *, top_k: int = 5) -> list[list[tuple[int, float]]]:
    """logits (N, C) -> per camera the top-k (class index, probability)."""
    probs = _softmax(logits)
    order = np.argsort(-probs, axis=-1)[:, :top_k]
    return [[(int(c), float(probs[i, c])) for c in order[i]] for i in range(len(order))]
