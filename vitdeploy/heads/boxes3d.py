"""3D boxes in the ego frame: the ``SetResult`` of a rig-level 3D head, and its ground truth.

Sizes are (length, width, height) metres: length along the object's heading, width across it
(nuScenes stores width, length, height). Yaw is the heading in radians, counter-clockwise from the
ego x axis seen from above. Centres are the middle of the box, so z is half the height for an
object standing on the ground. The ego frame is that of :mod:`vitdeploy.data.geometry`: metres,
x forward, y left, z up, origin on the ground under the rig.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vitdeploy.heads.results import SetResult, class_name


@dataclass(frozen=True, eq=False)
class Boxes3D(SetResult):
    """Boxes of one frame set, ego frame: the ``SetResult`` of a rig-level 3D head.

    ``centers`` (K, 3) metres; ``sizes`` (K, 3) length, width, height metres; ``yaws`` (K,)
    radians; ``labels`` (K,) class indices; ``scores`` (K,) 0..1 (1 for ground truth);
    ``cameras`` per box the names of the cameras that see it (ground truth; empty for
    predictions); ``ids`` (K,) object ids, stable across the ticks of one scene (-1: unknown).
    """

    centers: np.ndarray
    sizes: np.ndarray
    yaws: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    cameras: tuple[tuple[str, ...], ...] = ()
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        k = len(self.labels)
        shapes = {"centers": (k, 3), "sizes": (k, 3), "yaws": (k,), "scores": (k,)}
        for name, want in shapes.items():
            if np.shape(getattr(self, name)) != want:
                raise ValueError(f"Boxes3D.{name} has shape {np.shape(getattr(self, name))}, expected {want}")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls) -> Boxes3D:
        return cls(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.int64), np.zeros(0, np.float32))

    def ego_distance(self) -> np.ndarray:
        """(K,) distance of each centre from the ego origin in the ground plane, metres."""
        return np.hypot(self.centers[:, 0], self.centers[:, 1])

    def to_records(self, class_names: Sequence[str]) -> list[dict]:
        """JSON-ready boxes: label, class_id, score, center, size, yaw (and cameras, id when known)."""
        out = []
        for i in range(len(self)):
            label = int(self.labels[i])
            rec = {"label": class_name(class_names, label), "class_id": label,
                   "score": round(float(self.scores[i]), 4),
                   "center": [round(float(v), 3) for v in self.centers[i]],
                   "size": [round(float(v), 3) for v in self.sizes[i]], "yaw": round(float(self.yaws[i]), 4)}
            if self.cameras:
                rec["cameras"] = list(self.cameras[i])
            if len(self.ids):
                rec["id"] = int(self.ids[i])
            out.append(rec)
        return out
