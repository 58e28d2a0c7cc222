"""Raw query-head outputs -> scored boxes, masks and classes (the math the head kinds share).

Decoding is kept out of the model (DETR's habit), so the same graph serves every threshold. Scores
come from the bundle's ``ScoreActivation``: softmax over C + 1 classes with the last one "no
object" (DETR), or one sigmoid per class (Deformable DETR, RT-DETR, DINO); boxes from its
``BoxFormat``. OpenCV (mask resizing) is imported where masks are decoded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vitdeploy.bundle.head import BoxFormat, BoxLayout, BoxUnits, ScoreActivation
from vitdeploy.heads.letterbox import Letterbox
from vitdeploy.heads.results import Detections


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, float32."""
    x = x.astype(np.float32)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def class_scores(logits: np.ndarray, activation: ScoreActivation) -> np.ndarray:
    """logits (..., C + 1) for softmax (the last class "no object", dropped here) or (..., C) for
    sigmoid -> per-class scores (..., C) in 0..1, float32."""
    if activation is ScoreActivation.SOFTMAX:
        return softmax(logits)[..., :-1]
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float32)))).astype(np.float32)


def select(scores: np.ndarray, *, activation: ScoreActivation, score_threshold: float, top_k: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scores (Q, C) of one camera -> (query index, score, label) of the detections kept, best first.

    Softmax: one detection per query, its best class (DETR's post-processing). Sigmoid: every
    (query, class) pair is a candidate and the ``top_k`` best above the threshold are kept, so one
    query may give a box for two classes: Deformable DETR, RT-DETR and DINO post-process so (top-k
    over the flattened query x class scores), and a detector trained with per-class sigmoid scores
    is measured that way.
    """
    if activation is ScoreActivation.SIGMOID:
        flat = scores.reshape(-1)
        keep = np.flatnonzero(flat >= score_threshold)
        keep = keep[np.argsort(-flat[keep], kind="stable")][:top_k]
        queries, labels = np.divmod(keep, scores.shape[-1])
        return queries, flat[keep], labels
    best = scores.max(axis=-1)
    labels = scores.argmax(axis=-1)
    keep = np.flatnonzero(best >= score_threshold)
    keep = keep[np.argsort(-best[keep], kind="stable")][:top_k]
    return keep, best[keep], labels[keep]


def to_xyxy_pixels(boxes: np.ndarray, box_format: BoxFormat, *, input_size: tuple[int, int]) -> np.ndarray:
    """(..., 4) boxes in ``box_format`` -> x1, y1, x2, y2 in pixels of the (H, W) model input."""
    a, b, c, d = np.moveaxis(boxes.astype(np.float32), -1, 0)
    if box_format.layout is BoxLayout.CXCYWH:
        a, b, c, d = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    if box_format.units is BoxUnits.NORMALIZED:
        h, w = input_size
        a, b, c, d = a * w, b * h, c * w, d * h
    return np.stack([a, b, c, d], -1)


def select_cameras(scores: np.ndarray, *, activation: ScoreActivation, score_threshold: float, top_k: int
                   ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """scores (N, Q, C) of N cameras -> per camera what ``select`` returns for it, computed over
    all cameras at once for softmax scores (the same detections, in the same order)."""
    if activation is ScoreActivation.SIGMOID:  # ``select`` sorts only what passed the threshold
        return [select(s, activation=activation, score_threshold=score_threshold, top_k=top_k) for s in scores]
    best = scores.max(axis=-1)
    labels = scores.argmax(axis=-1)
    passed = best >= score_threshold
    # one stable sort per camera: queries under the threshold sort last; ties keep query order
    order = np.argsort(np.where(passed, -best, np.inf), axis=-1, kind="stable")[:, :top_k]
    counts = np.minimum(passed.sum(axis=-1), top_k)
    rows = np.arange(len(scores))[:, None]
    best_sorted, labels_sorted = best[rows, order], labels[rows, order]
    return [(order[i, :n], best_sorted[i, :n], labels_sorted[i, :n]) for i, n in enumerate(counts)]


def letterboxes_to_frame(letterboxes: Sequence[Letterbox], xyxy: np.ndarray) -> np.ndarray:
    """Boxes (N, Q, 4) in model-input pixels, camera i's under ``letterboxes[i]`` -> frame
    pixels, clipped to each frame: ``Letterbox.to_frame`` for all cameras at once."""
    lb = np.asarray([(b.pad_x, b.pad_y, b.scale_x, b.scale_y, b.frame_size[1], b.frame_size[0])
                     for b in letterboxes], np.float32)[:, None, :]
    out = xyxy.astype(np.float32)  # a copy
    out[..., 0::2] = ((out[..., 0::2] - lb[..., 0:1]) / lb[..., 2:3]).clip(0, lb[..., 4:5])
    out[..., 1::2] = ((out[..., 1::2] - lb[..., 1:2]) / lb[..., 3:4]).clip(0, lb[..., 5:6])
    return out


def decode_boxes(logits: np.ndarray, boxes: np.ndarray, *, activation: ScoreActivation, box_format: BoxFormat,
                 input_size: tuple[int, int], letterboxes: Sequence[Letterbox] | None = None,
                 score_threshold: float = 0.3, top_k: int = 100) -> list[Detections]:
    """logits (N, Q, C[+1]), boxes (N, Q, 4) -> one ``Detections`` per camera, boxes in frame
    pixels (model-input pixels without ``letterboxes``). Vectorised over cameras: at 5 ms per
    inference a Python loop per camera is a visible part of a frame set's CPU time."""
    scores = class_scores(logits, activation)
    picks = select_cameras(scores, activation=activation, score_threshold=score_threshold, top_k=top_k)
    xyxy = to_xyxy_pixels(boxes, box_format, input_size=input_size)
    if letterboxes is not None:
        xyxy = letterboxes_to_frame(letterboxes, xyxy)
    return [Detections(xyxy[i, keep].reshape(-1, 4), best.astype(np.float32), labels.astype(np.int64))
            for i, (keep, best, labels) in enumerate(picks)]


def decode_masks(logits: np.ndarray, masks: np.ndarray, *, activation: ScoreActivation,
                 input_size: tuple[int, int], letterboxes: Sequence[Letterbox] | None = None,
                 score_threshold: float = 0.3, top_k: int = 50) -> list[Detections]:
    """logits (N, Q, C[+1]), masks (N, Q, h, w) mask logits at the stride -> instance masks.

    Masks are upsampled to the model input, then mapped back to the frame (letterbox undone);
    boxes are the masks' extents.
    """
    import cv2

    h, w = input_size
    scores = class_scores(logits, activation)
    out = []
    for i in range(logits.shape[0]):
        keep, best, labels = select(scores[i], activation=activation, score_threshold=score_threshold,
                                    top_k=top_k)
        lb = letterboxes[i] if letterboxes is not None else None
        frame_h, frame_w = lb.frame_size if lb is not None else (h, w)
        full = np.zeros((len(keep), frame_h, frame_w), bool)
        for j, q in enumerate(keep):
            m = cv2.resize(masks[i, q].astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            if lb is not None:
                x0, y0, x1, y1 = lb.frame_region()
                m = cv2.resize(m[y0:y1, x0:x1], (frame_w, frame_h), interpolation=cv2.INTER_LINEAR)
            full[j] = m > 0.0
        boxes = np.zeros((len(keep), 4), np.float32)
        for j in range(len(keep)):
            ys, xs = np.nonzero(full[j])
            if len(xs):
                boxes[j] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        out.append(Detections(boxes, best.astype(np.float32), labels.astype(np.int64), full))
    return out


def decode_classes(logits: np.ndarray, *, top_k: int = 5) -> list[list[tuple[int, float]]]:
    """logits (N, C) -> per camera the top-k (class index, softmax probability)."""
    probs = softmax(logits)
    order = np.argsort(-probs, axis=-1)[:, :top_k]
    return [[(int(c), float(probs[i, c])) for c in order[i]] for i in range(len(order))]
