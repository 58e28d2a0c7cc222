"""Predictions files: each evaluated configuration's detections as a COCO results JSON.

The format every COCO tool reads (pycocotools' ``loadRes``, faster-coco-eval, FiftyOne, ...): a
list of ``{"image_id", "category_id", "bbox": [x, y, width, height], "score"}``, boxes in the
image's pixels. Image ids and category ids are the COCO file's own; synthetic data numbers images
1, 2, ... in evaluation order and classes 1, 2, ... in the dataset's class order. Detections of
classes the dataset does not have are left out. Written per configuration as
``<backend>.<precision>.json`` (e.g. ``onnxruntime.int8.json``), atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from vitdeploy.bundle import atomic_write_text
from vitdeploy.evaluation.evaluate import EvalReport, EvalResult


def coco_results(result: EvalResult, *, image_ids: list[int], categories: dict[int, int]) -> list[dict]:
    """One configuration's detections as COCO results; ``categories``: model class -> category id."""
    out = []
    for image_id, dets in zip(image_ids, result.predictions or [], strict=False):
        for (x1, y1, x2, y2), score, label in zip(dets.boxes, dets.scores, dets.labels, strict=True):
            category = categories.get(int(label))
            if category is None:
                continue
            out.append({"image_id": int(image_id), "category_id": category,
                        "bbox": [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2),
                                 round(float(y2 - y1), 2)],
                        "score": round(float(score), 5)})
    return out


def write_predictions(report: EvalReport, folder: str | Path) -> list[Path]:
    """Write a COCO results file for every configuration that was scored on detections; returns them."""
    folder = Path(folder)
    paths = []
    for result in report.results:
        if result.predictions is None:
            continue
        path = folder / f"{result.config.backend}.{result.config.precision.value}.json"
        results = coco_results(result, image_ids=report.image_ids, categories=report.categories)
        atomic_write_text(path, json.dumps(results, separators=(",", ":")) + "\n")
        paths.append(path)
    return paths
