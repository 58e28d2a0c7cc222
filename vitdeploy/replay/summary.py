"""One recording's summary: per precision the frames, detections, latency percentiles, agreement
with FP32 (the head's, on the recorded results) and mAP against the labels where there are some.

Everything is read back from the JSONL the runs wrote, so a summary says what the files say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitdeploy.bundle import Precision
from vitdeploy.errors import VitDeployError
from vitdeploy.heads import CameraResult, Head
from vitdeploy.heads.results import detections_from_records
from vitdeploy.heads.truth import DetectionTruth
from vitdeploy.replay.jsonl import camera_frames, read_records
from vitdeploy.replay.recordings import Recording
from vitdeploy.replay.rigs import GroundTruth
from vitdeploy.runtime.stats import RunSummary

#: The reference every other precision is compared with.
REFERENCE = Precision.FP32
#: Latency percentiles in a summary, and the latencies they are taken of.
LATENCY_PERCENTILES = (50, 95, 99)
LATENCY_NAMES = ("end_to_end", "infer")


@dataclass
class PrecisionRun:
    """One run of a recording at one precision: its JSONL, `run_rig`'s summary and, for a
    labelled recording, the labels of the frames it was given."""

    precision: Precision
    jsonl: Path
    summary: RunSummary
    truth: GroundTruth | None = None


def recording_summary(recording: Recording, runs: dict[Precision, PrecisionRun], *, head: Head) -> dict:
    """The summary of ``recording`` replayed at every precision of ``runs`` (JSON-ready). Its
    ``agreement`` is the lowest agreement of any precision with FP32 (None where none was measured),
    by which the report ranks recordings."""
    frames = {p: camera_frames(read_records(run.jsonl)) for p, run in runs.items()}
    entries = {}
    for p, run in runs.items():
        entry = _counts(run, frames[p])
        if p is not REFERENCE:
            entry["agreement"] = _agreement(head, frames.get(REFERENCE), frames[p])
        if run.truth is not None:
            entry["truth"] = _truth(head, frames[p], run.truth, camera=recording.cameras[0].name)
        entries[p.value] = entry
    values = [e["agreement"]["value"] for e in entries.values() if e.get("agreement", {}).get("value") is not None]
    return {"recording": recording.to_dict(), "precisions": entries, "agreement": min(values, default=None)}


def _counts(run: PrecisionRun, frames: dict) -> dict:
    s = run.summary
    return {
        "jsonl": run.jsonl.name,
        "sets": s.sets_out,
        "frames": sum(c.frames_out for c in s.cameras),
        "detections": sum(len(results) for results in frames.values()),
        "missing": sum(c.missing for c in s.cameras),
        "skipped": s.frames_skipped,
        "dropped": s.sets_dropped,
        "corrupt": sum(c.corrupt for c in s.cameras),
        "cameras": {c.name: {"frames": c.frames_out, "corrupt": c.corrupt, "health": c.health.value,
                             "last_error": c.last_error} for c in s.cameras},
        "latency_ms": {name: {f"p{q}": _finite(v) for q, v in s.percentiles(name, LATENCY_PERCENTILES).items()}
                       for name in LATENCY_NAMES},
        "duration_s": round(s.duration_s, 3),
        "backend": s.backend,
    }


def _finite(value: float) -> float | None:
    return round(value, 3) if math.isfinite(value) else None


def _result(records: list[dict]) -> CameraResult:
    """A camera frame's results as the head decoded them, from its JSONL records."""
    if records and "box" not in records[0]:  # a classification head's top-k classes
        return CameraResult(classes=[(r["label"], float(r["score"])) for r in records])
    return CameraResult(detections=detections_from_records(records))


def _agreement(head: Head, reference: dict | None, candidate: dict) -> dict:
    if reference is None:
        return {"value": None, "reason": f"{REFERENCE.value} was not replayed, so there is nothing to agree with"}
    keys = sorted(set(reference) & set(candidate))
    unmatched = len(set(reference) ^ set(candidate))
    found = head.results_agreement([_result(reference[k]) for k in keys], [_result(candidate[k]) for k in keys])
    if found is None:
        return {"value": None, "frames": len(keys), "unmatched": unmatched,
                "reason": f"{head.kind} heads have no agreement on recorded results"}
    return {"metric": found.metric, "value": found.value, "frames": len(keys), "unmatched": unmatched,
            "description": found.description, **found.details, "reason": found.reason}


def _truth(head: Head, frames: dict, truth: GroundTruth, *, camera: str) -> dict:
    """COCO box AP of the recorded detections against the labels, frame by frame."""
    if truth.reason:
        return {"map": None, "reason": truth.reason}
    try:
        scorer = head.truth_scorer(class_map=np.arange(max(head.num_classes, 1)))
    except VitDeployError as exc:
        return {"map": None, "reason": str(exc)}
    if not isinstance(scorer, DetectionTruth):
        return {"map": None, "reason": f"{head.kind} heads are not scored on boxes"}
    predictions = [detections_from_records(frames.get((camera, k), [])) for k in range(len(truth.frames))]
    scorer.add_detections(predictions, list(truth.frames))
    scores = scorer.scores().to_dict()
    return {k: scores[k] for k in ("images", "map", "map50", "map75")}
