#!/usr/bin/env python3
"""Cross-check `vitdeploy.heads.metrics3d` against nuscenes-devkit on random frame sets.

nuscenes-devkit pins numpy<2, so it lives in its own venv; this script runs there and calls the
project's python for vitdeploy's side:

  python3 -m venv /tmp/nusc-venv && /tmp/nusc-venv/bin/pip install nuscenes-devkit
  /tmp/nusc-venv/bin/python tools/crosscheck_nuscenes_metric.py --ours-python .venv/bin/python

The devkit's `accumulate`, `calc_ap` and `calc_tp` score the same boxes (vitdeploy's classes are
renamed to nuScenes classes with the same treatment: cyclist -> bicycle, traffic_light -> bus; the
class range filter is applied as `filter_eval_boxes` does). Prints the largest difference of any
per-class AP (per threshold) and TP error, over classes that have ground truth.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CLASSES = ("car", "truck", "pedestrian", "cyclist", "traffic_cone", "traffic_light")
NUSC = {"car": "car", "truck": "truck", "pedestrian": "pedestrian", "cyclist": "bicycle",
        "traffic_cone": "traffic_cone", "traffic_light": "bus"}
RANGE = {"car": 50.0, "truck": 50.0, "pedestrian": 40.0, "cyclist": 40.0, "traffic_cone": 30.0, "traffic_light": 40.0}
THRESHOLDS = (0.5, 1.0, 2.0, 4.0)

OURS = """
import json, sys
import numpy as np
from vitdeploy.data.boxes3d import Boxes3D
from vitdeploy.heads.metrics3d import Detection3DConfig, detection3d_scores
doc = json.load(open(sys.argv[1]))
def boxes(rows):
    a = np.array(rows, np.float64).reshape(-1, 9)
    return Boxes3D(a[:, 0:3], a[:, 3:6], a[:, 6], a[:, 7].astype(np.int64), a[:, 8])
classes = tuple(doc["classes"])
s = detection3d_scores([boxes(p) for p in doc["pred"]], [boxes(g) for g in doc["gt"]],
                       config=Detection3DConfig(class_names=classes))
print(json.dumps({n: {"ap": {str(t): v for t, v in c.ap_per_threshold.items()}, "trans_err": c.ate,
                      "scale_err": c.ase, "orient_err": c.aoe} for n, c in s.per_class.items()}))
"""


def make_case(rng: np.random.Generator, samples: int) -> dict:
    """Ground truth and noisy predictions; rows are x, y, z, l, w, h, yaw, label, score."""
    gt, pred = [], []
    for _ in range(samples):
        k = int(rng.integers(0, 12))
        g = np.zeros((k, 9))
        g[:, 0:2] = rng.uniform(-55, 55, (k, 2))
        g[:, 2] = rng.uniform(0.2, 2.0, k)
        g[:, 3:6] = rng.uniform(0.3, 6.0, (k, 3))
        g[:, 6] = rng.uniform(-math.pi, math.pi, k)
        g[:, 7] = rng.integers(0, len(CLASSES), k)
        g[:, 8] = 1.0
        p = g[rng.random(k) < 0.8].copy()  # some are missed
        p[:, 0:3] += rng.normal(0, rng.choice([0.2, 0.8, 2.0]), (len(p), 3))
        p[:, 3:6] *= rng.uniform(0.7, 1.3, (len(p), 3))
        p[:, 6] += rng.normal(0, 0.5, len(p))
        fp = np.zeros((int(rng.integers(0, 5)), 9))
        fp[:, 0:2] = rng.uniform(-55, 55, (len(fp), 2))
        fp[:, 3:6] = rng.uniform(0.3, 6.0, (len(fp), 3))
        fp[:, 7] = rng.integers(0, len(CLASSES), len(fp))
        p = np.concatenate([p, fp])
        p[:, 8] = np.round(rng.random(len(p)), 1)  # coarse scores: many ties, to test the tie-break
        gt.append(g.tolist())
        pred.append(p.tolist())
    return {"classes": list(CLASSES), "gt": gt, "pred": pred}


def devkit_scores(case: dict) -> dict:
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.common.utils import center_distance
    from nuscenes.eval.detection.algo import accumulate, calc_ap, calc_tp
    from nuscenes.eval.detection.data_classes import DetectionBox
    from pyquaternion import Quaternion

    def eval_boxes(rows_per_sample) -> EvalBoxes:
        out = EvalBoxes()
        for i, rows in enumerate(rows_per_sample):
            kept = []
            for x, y, z, length, width, height, yaw, label, score in rows:
                name = CLASSES[int(label)]
                if math.hypot(x, y) > RANGE[name]:
                    continue
                kept.append(DetectionBox(sample_token=f"s{i}", translation=(x, y, z), size=(width, length, height),
                                         rotation=tuple(Quaternion(axis=(0, 0, 1), radians=yaw)),
                                         ego_translation=(x, y, z), detection_name=NUSC[name],
                                         detection_score=float(score)))
            out.add_boxes(f"s{i}", kept)
        return out

    gt, pred = eval_boxes(case["gt"]), eval_boxes(case["pred"])
    result = {}
    for name in CLASSES:
        if not any(b.detection_name == NUSC[name] for b in gt.all):
            continue
        aps = {str(t): calc_ap(accumulate(gt, pred, NUSC[name], center_distance, t), 0.1, 0.1) for t in THRESHOLDS}
        md = accumulate(gt, pred, NUSC[name], center_distance, 2.0)
        errs = {k: calc_tp(md, 0.1, k) for k in ("trans_err", "scale_err", "orient_err")}
        if name == "traffic_cone":
            errs["orient_err"] = None
        result[name] = {"ap": aps, **errs}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours-python", default=".venv/bin/python")
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--samples", type=int, default=30, help="frame sets per case")
    args = ap.parse_args()
    worst = {"ap": 0.0, "tp": 0.0}
    for c in range(args.cases):
        case = make_case(np.random.default_rng(c), args.samples)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "case.json"
            path.write_text(json.dumps(case))
            ours = json.loads(subprocess.run([args.ours_python, "-c", OURS, str(path)], check=True,
                                             capture_output=True, text=True).stdout)
        theirs = devkit_scores(case)
        for name, t in theirs.items():
            o = ours[name]
            for th, v in t["ap"].items():
                worst["ap"] = max(worst["ap"], abs(v - o["ap"][th]))
            for k in ("trans_err", "scale_err", "orient_err"):
                if (t[k] is None) != (o[k] is None):
                    sys.exit(f"case {c} {name} {k}: devkit {t[k]} vs ours {o[k]}")
                if t[k] is not None:
                    worst["tp"] = max(worst["tp"], abs(t[k] - o[k]))
        print(f"case {c}: classes {sorted(theirs)}; largest |AP diff| so far {worst['ap']:.2e}, "
              f"|TP error diff| {worst['tp']:.2e}", flush=True)
    print(f"{args.cases} cases x {args.samples} frame sets: max |AP diff| {worst['ap']:.3e}, "
          f"max |TP error diff| {worst['tp']:.3e}")


if __name__ == "__main__":
    main()
