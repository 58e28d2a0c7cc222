"""Raw outputs of a rig-level 3D head -> boxes in the ego frame, one set per frame set.

The queries answer for the whole rig, so there is nothing to merge across cameras: an object two
cameras see is one query's box. Decoding is a threshold on the class probability and a top-k.
"""

from __future__ import annotations

import numpy as np

from vitdeploy.bundle.head import ScoreActivation
from vitdeploy.data.boxes3d import Boxes3D
from vitdeploy.heads.decode import select, softmax


def decode_rig3d(logits: np.ndarray, boxes3d: np.ndarray, *, score_threshold: float = 0.3,
                 top_k: int = 100) -> list[Boxes3D]:
    """logits (S, Q, C+1) with "no object" last, boxes3d (S, Q, 8) as x, y, z, l, w, h (metres,
    ego frame), sin, cos of the yaw -> one :class:`Boxes3D` per frame set (S is 1 for a graph
    run on one frame set), best score first."""
    scores = softmax(logits)[..., :-1]
    out = []
    for i in range(logits.shape[0]):
        keep, best, labels = select(scores[i], activation=ScoreActivation.SOFTMAX, score_threshold=score_threshold,
                                    top_k=top_k)
        b = boxes3d[i, keep].astype(np.float32)
        out.append(Boxes3D(centers=b[:, 0:3], sizes=b[:, 3:6], yaws=np.arctan2(b[:, 6], b[:, 7]),
                           labels=labels.astype(np.int64), scores=best.astype(np.float32)))
    return out
