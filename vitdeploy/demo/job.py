"""The demo job, step by step, reusing what an earlier run already built.

1. export ``demo-detr`` (shipped weights) to ``OUT/bundle``;
2. make its FP16 and INT8 ONNX on generated frames (``vitdeploy calibrate``);
3. run a synthetic rig of ``cameras`` cameras through the runtime on onnxruntime at each precision
   (free-running, so every frame set is processed: the latency is the pipeline's, not a queue's);
4. evaluate each precision against the generator's ground truth (COCO mAP, faster-coco-eval);
5. write ``bench.json`` (latency and throughput per precision, with the machine) and return rows
   for the table.

A step whose output is already in ``OUT`` with a matching manifest entry is skipped, so a second
run only re-measures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vitdeploy.bundle import Bundle, Precision, Status, atomic_write_text, ensure_writable_dir
from vitdeploy.errors import BundleError, DataError

MODEL = "demo-detr"
PRECISIONS = (Precision.FP32, Precision.FP16, Precision.INT8)
#: camera frames are rendered at this size and resized to the model's 192x336 by the runtime
CAMERA_SIZE = (256, 448)
RIG_SEED = 7  # a held-out drive: demo-detr was trained on seeds >= 1000
CALIBRATION_SAMPLES = 128
EVAL_FRAMES = 120

Say = Callable[[str], None]


@dataclass
class PrecisionRow:
    precision: Precision
    p50_ms: float
    p99_ms: float
    sets_per_s: float
    map50: float | None
    map: float | None
    sets: int
    dropped: int


@dataclass
class DemoResult:
    out: Path
    rows: list[PrecisionRow]
    video: Path | None
    jsonl: list[Path]
    bench_json: Path
    eval_json: Path
    reused: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _bundle(out: Path, *, cameras: int, say: Say, reused: list[str]) -> Bundle:
    from vitdeploy.exporter.export import ExportOptions, export_model

    path = out / "bundle"
    try:
        b = Bundle.open(path)
        if (b.manifest.model == MODEL and b.manifest.max_cameras >= cameras
                and b.manifest.graph().variant(Precision.FP32) is not None):
            reused.append("export")
            return b
    except BundleError:
        pass
    say(f"exporting {MODEL} (ONNX, parity vs PyTorch)")
    return export_model(MODEL, out=path, options=ExportOptions(max_cameras=max(cameras, 6))).bundle


def _calibrated(bundle: Bundle, precision: Precision, *, samples: int, say: Say, reused: list[str]) -> Bundle:
    from vitdeploy.calibration import CalibrationOptions, calibrate_bundle

    variant = bundle.manifest.graph().variant(precision)
    if variant is not None and variant.status is Status.GOOD and (bundle.path / variant.file).is_file():
        reused.append(f"calibrate {precision.value}")
        return bundle
    say(f"calibrating {precision.value} on {samples} generated frames")
    calibrate_bundle(bundle.path, precision=precision.value, data="synthetic",
                     options=CalibrationOptions(samples=samples, heldout=min(32, samples)))
    return Bundle.open(bundle.path)


def run_demo(*, out: str | Path = "runs/demo", cameras: int = 6, frames: int = 40,
             calibration_samples: int = CALIBRATION_SAMPLES, eval_frames: int = EVAL_FRAMES,
             progress: Say | None = None) -> DemoResult:
    """Run the demo into ``out``; ``frames`` frame sets per precision through the runtime."""
    from vitdeploy.evaluation.datasets import synthetic_dataset
    from vitdeploy.evaluation.evaluate import evaluate_bundle
    from vitdeploy.runtime.configs import Configuration
    from vitdeploy.runtime.machine import describe_machine
    from vitdeploy.runtime.rig import ModelConfig, Outputs, VideoMode, synthetic_rig
    from vitdeploy.runtime.run import RunOptions, run_rig

    say = progress or (lambda _m: None)
    if not 1 <= cameras <= 6:
        raise DataError(f"--cameras {cameras} is out of range; the synthetic rig has 1 to 6 cameras")
    if frames < 2:
        raise DataError(f"--frames {frames} is too few; give at least 2 frame sets per precision")
    start = time.perf_counter()
    out = ensure_writable_dir(out)
    reused: list[str] = []
    bundle = _bundle(out, cameras=cameras, say=say, reused=reused)
    for precision in PRECISIONS[1:]:
        bundle = _calibrated(bundle, precision, samples=calibration_samples, say=say, reused=reused)

    rows: list[PrecisionRow] = []
    summaries = {}
    for precision in PRECISIONS:
        say(f"running {cameras} synthetic cameras through the runtime at {precision.value} ({frames} frame sets)")
        rig = synthetic_rig(
            cameras, size=CAMERA_SIZE, seed=RIG_SEED, loop=frames, rate_hz=0.0,
            model=ModelConfig(bundle=bundle.path, backend="onnxruntime", precision=precision, score_threshold=0.5),
            outputs=Outputs(dir=out, jsonl=f"frames.{precision.value}.jsonl",
                            video=VideoMode.MOSAIC if precision is Precision.FP32 else VideoMode.NONE, live=False),
        )
        summaries[precision] = run_rig(rig, bundle=bundle, options=RunOptions(out=out, max_frames=frames))

    say(f"evaluating each precision on {eval_frames} held-out generated frames with ground truth")
    dataset = synthetic_dataset(image_size=CAMERA_SIZE, seed=RIG_SEED, frames=eval_frames, cameras=cameras)
    report = evaluate_bundle(bundle, dataset, configs=[Configuration("onnxruntime", p, 1, None) for p in PRECISIONS])
    eval_json = report.write_json(out / "eval.json")
    scores = {r.config.precision: r.scores for r in report.results if r.scores is not None}

    bench = {"model": MODEL, "cameras": cameras, "camera_size": list(CAMERA_SIZE), "frame_sets": frames,
             "backend": "onnxruntime", "machine": describe_machine(), "precisions": {}}
    for precision, s in summaries.items():
        pct = s.percentiles("end_to_end", (50, 95, 99))
        skip = min(2, max(0, s.sets_out - 2))  # the first sets pay for session warm-up
        row = PrecisionRow(precision=precision, p50_ms=pct[50], p99_ms=pct[99], sets_per_s=s.throughput(skip=skip),
                           map50=scores[precision].map50 if precision in scores else None,
                           map=scores[precision].map if precision in scores else None,
                           sets=s.sets_out, dropped=s.sets_dropped)
        rows.append(row)
        bench["precisions"][precision.value] = {
            "end_to_end_ms": {f"p{int(q)}": round(v, 2) for q, v in pct.items()},
            "infer_ms": {f"p{int(q)}": round(v, 2) for q, v in s.percentiles("infer", (50, 99)).items()},
            "preprocess_ms": {f"p{int(q)}": round(v, 2) for q, v in s.percentiles("preprocess", (50, 99)).items()},
            "sets_per_s": round(row.sets_per_s, 3), "camera_frames_per_s": round(row.sets_per_s * cameras, 2),
            "sets": s.sets_out, "dropped": s.sets_dropped, "map50": row.map50, "map": row.map,
        }
    bench_json = out / "bench.json"
    atomic_write_text(bench_json, json.dumps(bench, indent=2, allow_nan=False) + "\n")
    fp32 = summaries[Precision.FP32]
    return DemoResult(out=out, rows=rows, video=fp32.videos[0] if fp32.videos else None,
                      jsonl=[s.jsonl for s in summaries.values() if s.jsonl], bench_json=bench_json,
                      eval_json=eval_json, reused=reused, seconds=time.perf_counter() - start)
