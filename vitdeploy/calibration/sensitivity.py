"""Which quantized layers cost accuracy: rank layer groups, and fall back the worst ones.

Cheap by construction: the INT8 graph is calibrated once; a variant with only one group quantized
is that graph with every other group's Q/DQ pairs bypassed (the scales stay what calibration
found), scored on a small held-out set against FP32. A group's *cost* is how far its task
agreement falls below 1.0 when it alone is quantized; ties (common: most groups alone cost
nothing at the task level) are broken by how far the outputs' cosine similarity falls.

``auto_fallback`` walks that ranking from the worst group, bypassing groups until the agreement
of the whole graph reaches the threshold; the caller re-quantizes with those groups excluded so
the file on disk is what ``--exclude`` would make.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from vitdeploy.calibration.int8 import Placement, without_qdq
from vitdeploy.calibration.report import TaskScorer, run_graph, tensor_agreement

#: Held-out frames sensitivity analysis scores each variant on.
SENSITIVITY_FRAMES = 16


@dataclass
class GroupSensitivity:
    group: str
    layers: list[str]  # layer paths
    agreement: float | None  # task agreement with only this group quantized
    cosine: float  # worst output cosine similarity with only this group quantized

    @property
    def cost(self) -> float:
        return 1.0 - (self.agreement if self.agreement is not None else 1.0)

    def summary(self) -> dict:
        return {"group": self.group, "layers": self.layers, "agreement": self.agreement, "cost": self.cost,
                "cosine": self.cosine}


@dataclass
class Fallback:
    excluded: list[str]  # groups, worst first
    agreement: float | None  # on the sensitivity frames, with those groups in high precision
    reached: bool


def _subset(feeds: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {k: v[:n] for k, v in feeds.items()}


def _groups(placement: Placement) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for layer in placement.quantized_layers():
        groups.setdefault(layer.group, []).append(layer.node)
    return groups


def _score(model: onnx.ModelProto, feeds: dict[str, np.ndarray], scorer: TaskScorer) -> tuple[float | None, float]:
    out = run_graph(model, feeds)
    task = scorer.score(out)
    cos = min(tensor_agreement(scorer.reference[k], out[k]).cosine for k in scorer.reference)
    return (task.value if task else None), cos


def rank_groups(int8_model: onnx.ModelProto, placement: Placement, *, feeds: dict[str, np.ndarray],
                scorer: TaskScorer, progress: Callable[[str, int, int], None] | None = None) -> list[GroupSensitivity]:
    """Layer groups, worst first. ``scorer`` must hold the FP32 outputs of ``feeds``."""
    groups = _groups(placement)
    ranking = []
    for i, (group, nodes) in enumerate(groups.items()):
        others = [n for g, ns in groups.items() if g != group for n in ns]
        agreement, cos = _score(without_qdq(int8_model, others), feeds, scorer)
        ranking.append(GroupSensitivity(group=group, layers=[placement.layer(n).path for n in nodes],
                                        agreement=agreement, cosine=cos))
        if progress:
            progress("ranking layer groups", i + 1, len(groups))
    ranking.sort(key=lambda g: (-g.cost, g.cosine))
    return ranking


def auto_fallback(int8_model: onnx.ModelProto, placement: Placement, ranking: list[GroupSensitivity], *,
                  feeds: dict[str, np.ndarray], scorer: TaskScorer, min_agreement: float,
                  progress: Callable[[str, int, int], None] | None = None) -> Fallback:
    """Keep the worst groups in high precision, one at a time, until agreement >= ``min_agreement``."""
    groups = _groups(placement)
    excluded: list[str] = []
    agreement, _ = _score(int8_model, feeds, scorer)
    for i, entry in enumerate(ranking):
        if agreement is not None and agreement >= min_agreement:
            break
        excluded.append(entry.group)
        nodes = [n for g in excluded for n in groups[g]]
        agreement, _ = _score(without_qdq(int8_model, nodes), feeds, scorer)
        if progress:
            progress("falling back layer groups", i + 1, len(ranking))
    reached = agreement is not None and agreement >= min_agreement
    return Fallback(excluded=excluded, agreement=agreement, reached=reached)


def sensitivity_feeds(heldout: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return _subset(heldout, SENSITIVITY_FRAMES)
