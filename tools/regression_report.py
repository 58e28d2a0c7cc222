"""Regression report: latency and accuracy of the zoo's small models on every backend and precision.

For each model: export it (from a fixed-seed checkpoint, so the PyTorch reference can be rebuilt;
or from its shipped weights), make its FP16 and INT8 ONNX, then run `vitdeploy bench` (1 camera
and N cameras, back to back) and `vitdeploy eval` (held-out synthetic drive) through the library,
and write one Markdown table — models x backends x precisions: latency p50/p99, throughput,
accuracy and its change against the FP32 ONNX — labelled with the machine it ran on.

    python tools/regression_report.py                      # docs/regression.md, default models
    python tools/regression_report.py --models vit-test-detr --iterations 20 --frames 12 --out /tmp/r.md

Models without trained weights score near zero: their accuracy columns show that each precision
keeps what FP32 computes (the Δ column), not that the model is any good. demo-detr (trained on
the synthetic scenes) is included when its weights are in vitdeploy/models/weights/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: model -> input size (H, W) to export at; None: the model's own. ViT-Tiny's 448x800 is cut to
#: 256x448 so a shared 2-core CPU finishes in minutes.
DEFAULT_MODELS: dict[str, tuple[int, int] | None] = {
    "vit-test-detr": None,
    "vit-test-mask": None,
    "vit-tiny-detr": (256, 448),
    "demo-detr": None,
}


@dataclass
class ModelRows:
    """What one model contributed: its bench and eval reports, or why it was left out."""

    name: str
    image_size: tuple[int, int] | None = None
    bench: object | None = None
    eval: object | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def prepare(name: str, work: Path, *, image_size: tuple[int, int] | None, cameras: int, calibration_samples: int,
            say) -> tuple[object, list[str]]:
    """Export ``name`` into ``work`` and add its FP16/INT8 graphs; returns (bundle, notes)."""
    import torch

    from vitdeploy.calibration import CalibrationOptions, calibrate_bundle
    from vitdeploy.errors import VitDeployError
    from vitdeploy.exporter.export import ExportOptions, export_model
    from vitdeploy.models.zoo import build_model, get_card

    card = get_card(name)
    notes = []
    checkpoint = None
    if card.weights is None:
        torch.manual_seed(0)
        checkpoint = work / f"{name}.seed0.pt"
        torch.save(build_model(name).state_dict(), checkpoint)
        notes.append("random weights (seed 0)")
    else:
        notes.append(f"shipped weights {card.weights}")
    say(f"{name}: export")
    bundle = export_model(name, out=work / name, checkpoint=checkpoint,
                          options=ExportOptions(image_size=image_size, max_cameras=max(cameras, 1))).bundle
    for precision in ("fp16", "int8"):
        say(f"{name}: calibrate {precision}")
        try:
            result = calibrate_bundle(bundle.path, precision=precision, options=CalibrationOptions(
                samples=calibration_samples, heldout=max(4, calibration_samples // 4)))
            if result.status.value != "good":
                notes.append(f"{precision} {result.status.value} by its calibration report")
        except VitDeployError as exc:
            notes.append(f"no {precision}: {exc}")
        except Exception as exc:  # a crash inside calibration is a finding of this report, not its end
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            notes.append(f"no {precision}: calibration crashed ({type(exc).__name__}: {first})")
            say(f"{name}: {precision} calibration crashed: {type(exc).__name__}")
    from vitdeploy.bundle import Bundle

    return Bundle.open(bundle.path), notes


def run_model(name: str, work: Path, args, say) -> ModelRows:
    from vitdeploy.bench import BenchSettings, bench_bundle, plan
    from vitdeploy.errors import VitDeployError
    from vitdeploy.evaluation.datasets import open_dataset
    from vitdeploy.evaluation.evaluate import eval_plan, evaluate_bundle
    from vitdeploy.models.zoo import get_card

    start = time.perf_counter()
    rows = ModelRows(name)
    card = get_card(name)
    if card.weights and not (Path(__file__).parents[1] / "vitdeploy" / "models" / "weights" / card.weights).is_file():
        rows.notes.append(f"left out: its weights {card.weights} are not in vitdeploy/models/weights/")
        return rows
    size = args.image_size.get(name, DEFAULT_MODELS.get(name))
    try:
        bundle, rows.notes = prepare(name, work, image_size=size, cameras=args.cameras,
                                     calibration_samples=args.calibration_samples, say=say)
    except VitDeployError as exc:
        rows.notes.append(f"left out: {exc}")
        return rows
    rows.image_size = tuple(bundle.manifest.image_size)
    say(f"{name}: bench")
    configs = plan(bundle, backends=args.backends, precisions=None, cameras=sorted({1, args.cameras}))
    rows.bench = bench_bundle(bundle, configs, BenchSettings(warmup=args.warmup, iterations=args.iterations))
    say(f"{name}: eval")
    try:
        data = open_dataset(f"synthetic:frames={args.frames}", image_size=rows.image_size)
        rows.eval = evaluate_bundle(bundle, data, configs=eval_plan(bundle, backends=args.backends, precisions=None))
    except VitDeployError as exc:
        rows.notes.append(f"no accuracy: {exc}")
    rows.seconds = time.perf_counter() - start
    return rows


def markdown(models: list[ModelRows], args, machine: dict) -> str:
    from vitdeploy.evaluation.evaluate import format_delta, format_score
    from vitdeploy.runtime.machine import machine_line

    cams = args.cameras
    lines = [
        "# Regression report",
        "",
        f"Written by `tools/regression_report.py` on {dt.date.today().isoformat()}.",
        "",
        f"- machine: {machine_line(machine)} ({machine.get('platform', '')})",
        f"- latency: back-to-back `Backend.infer` of one frame set, {args.warmup} warm-up + {args.iterations} "
        f"measured iterations per row, ms; p50/p99 at 1 camera and at {cams} cameras (batch {cams}); "
        f"frames/s at {cams} cameras",
        f"- accuracy: `vitdeploy eval` on the held-out synthetic drive (seed 7), {args.frames} images at each "
        "model's input size; COCO box mAP (faster-coco-eval), mIoU for mask heads; Δ = mAP@[.5:.95] minus the "
        "FP32 ONNX's",
        "- models exported with random weights score about 0 mAP: for them the accuracy columns show only that "
        "every precision runs and decodes end to end; accuracy that means something needs trained weights "
        "(demo-detr: shipped, but undertrained)",
        "",
        "| model | input | backend | precision | p50 ms x1 | p99 ms x1 | "
        f"p50 ms x{cams} | p99 ms x{cams} | frames/s x{cams} | mAP@[.5:.95] | mAP@.5 | mIoU | Δ mAP |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for m in models:
        if m.bench is None:
            notes.append(f"- **{m.name}**: " + "; ".join(m.notes))
            continue
        size = f"{m.image_size[0]}x{m.image_size[1]}"
        scores = {}
        ref = None
        if m.eval is not None:
            scores = {(r.config.backend, r.config.precision.value): r for r in m.eval.results}
            ref = m.eval.reference("onnxruntime")
        keys = list(dict.fromkeys((r.config.backend, r.config.precision.value) for r in m.bench.results))
        keys += [k for k in scores if k not in keys]
        for backend, precision in keys:
            by_cams = {r.config.cameras: r for r in m.bench.results
                       if (r.config.backend, r.config.precision.value) == (backend, precision)}
            one, many = by_cams.get(1), by_cams.get(cams)
            e = scores.get((backend, precision))

            def lat(r, q):
                return f"{getattr(r.latency, q):.1f}" if r is not None and r.ok else "-"

            if (one is None or not one.ok) and (e is None or e.scores is None):
                reason = (one.reason if one is not None else None) or (e.reason if e is not None else "")
                notes.append(f"- {m.name} {backend} {precision}: skipped — {reason}")
                continue
            s = e.scores if e is not None and e.scores is not None else None
            lines.append("| " + " | ".join([
                m.name, size, backend, precision, lat(one, "median_ms"), lat(one, "p99_ms"), lat(many, "median_ms"),
                lat(many, "p99_ms"), f"{many.frames_per_s:.1f}" if many is not None and many.ok else "-",
                format_score(s.map if s else None), format_score(s.map50 if s else None),
                format_score(s.miou if s else None),
                format_delta(s.map if s else None, ref.scores.map if ref else None)]) + " |")
        if m.notes:
            notes.append(f"- **{m.name}** ({m.seconds:.0f} s): " + "; ".join(m.notes))
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines += ["", "Latencies from a shared machine are noisy (p99 most of all): compare rows measured on the same "
              "machine in the same run, and re-run `vitdeploy bench --compare` before reading a change as a "
              "regression.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated zoo names")
    parser.add_argument("--image-size", action="append", default=[], metavar="MODEL=HxW",
                        help="export MODEL at HxW (repeatable); default: 256x448 for vit-tiny-detr, else its own")
    parser.add_argument("--backends", default="onnxruntime,torch")
    parser.add_argument("--cameras", type=int, default=6, help="the multi-camera batch besides 1 camera")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--frames", type=int, default=24, help="images of the synthetic eval set")
    parser.add_argument("--calibration-samples", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "regression.md")
    parser.add_argument("--json", type=Path, help="also write every bench/eval report into this JSON file")
    parser.add_argument("--workdir", type=Path, help="keep the bundles here (default: a temporary folder)")
    args = parser.parse_args()
    args.backends = [b for b in args.backends.split(",") if b]
    sizes = {}
    for item in args.image_size:
        model, _, hw = item.partition("=")
        h, _, w = hw.lower().partition("x")
        sizes[model] = (int(h), int(w))
    args.image_size = sizes

    from vitdeploy.bundle import atomic_write_text
    from vitdeploy.runtime.machine import describe_machine

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="vitdeploy-regression-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        models = [run_model(name, work, args, say) for name in args.models.split(",") if name]
    machine = describe_machine()
    atomic_write_text(args.out, markdown(models, args, machine))
    say(f"wrote {args.out}")
    if args.json is not None:
        doc = {"machine": machine, "models": [
            {"name": m.name, "notes": m.notes, "bench": m.bench.to_dict() if m.bench else None,
             "eval": m.eval.to_dict() if m.eval else None} for m in models]}
        atomic_write_text(args.json, json.dumps(doc, indent=1, allow_nan=False))
        say(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
