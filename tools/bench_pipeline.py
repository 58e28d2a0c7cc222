"""Pipeline efficiency: frame sets/s through the runtime divided by the backend's own throughput.

The runtime figure is `run_rig` exactly as `vitdeploy run` runs it (synthetic cameras, sync,
preprocess, onnxruntime, postprocess, JSONL sink), free-running with replayed frames so that the
model is the bottleneck. The backend figure is back-to-back ``infer`` on one prepared batch of the
same cameras, on the same backend object, in the same process. On a shared machine the two are
measured in alternating rounds (backend, runtime, backend, ..., backend) and each runtime round is
compared with the mean of the backend rounds around it; the process CPU time per set of each
phase is printed too, so pipeline overhead can be told apart from other load on the machine.

    python tools/bench_pipeline.py --model vit-tiny-detr --image-size 256x448 --seconds 20

Target: efficiency >= 0.9.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def backend_throughput(backend, feed: dict[str, np.ndarray], *, seconds: float) -> tuple[float, float]:
    """Back-to-back ``infer`` on ``feed`` for about ``seconds``; returns (batches per second,
    process CPU seconds per batch)."""
    n, start, cpu = 0, time.perf_counter(), cpu_seconds()
    while (elapsed := time.perf_counter() - start) < seconds or n < 3:
        backend.infer(feed)
        n += 1
    return n / elapsed, (cpu_seconds() - cpu) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit-tiny-detr", help="zoo model to export (ignored with --bundle)")
    parser.add_argument("--bundle", type=Path, help="use this bundle instead of exporting one")
    parser.add_argument("--image-size", default="256x448", help="HxW model input and camera frames, pixels")
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time of each round, s")
    parser.add_argument("--rounds", type=int, default=2, help="runtime rounds, each between two backend rounds")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: ORT's)")
    args = parser.parse_args()

    from vitdeploy.bundle import Bundle
    from vitdeploy.data.scenes import SceneGenerator
    from vitdeploy.runtime.backends.onnxruntime import from_bundle
    from vitdeploy.runtime.preprocess import preprocess_frames
    from vitdeploy.runtime.rig import Outputs, synthetic_rig
    from vitdeploy.runtime.run import RunOptions, run_rig

    h, w = (int(v) for v in args.image_size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="bench_pipeline.") as tmp:
        if args.bundle is not None:
            bundle = Bundle.open(args.bundle)
        else:
            from vitdeploy.exporter.export import ExportOptions, export_model

            print(f"exporting {args.model} at {h}x{w}, {args.cameras} cameras ...", flush=True)
            bundle = export_model(args.model, out=Path(tmp) / "bundle",
                                  options=ExportOptions(image_size=(h, w), max_cameras=args.cameras)).bundle
        manifest = bundle.manifest
        with from_bundle(bundle, threads=args.threads) as backend:
            gen = SceneGenerator(size=(h, w), cameras=args.cameras, seed=0, with_masks=False)
            frames = [f.image for f in gen.frame_set(0)]
            batch, _ = preprocess_frames(frames, manifest.preprocessing)
            feed = {backend.inputs[0].name: batch}
            for _ in range(3):
                backend.infer(feed)

            rig = synthetic_rig(args.cameras, size=(h, w), loop=8, rate_hz=0.0, latency_budget_ms=1e6,
                                outputs=Outputs(jsonl="frames.jsonl", live=False))
            backend_rounds = [backend_throughput(backend, feed, seconds=args.seconds)]
            runtime_rounds = []
            for r in range(args.rounds):
                cpu = cpu_seconds()
                summary = run_rig(rig, bundle=bundle, backend=backend, options=RunOptions(
                    out=Path(tmp) / f"run{r}", duration=args.seconds, handle_sigint=False))
                cpu_per_set = (cpu_seconds() - cpu) / max(1, summary.sets_out)
                skip = min(3, max(0, summary.sets_out - 3))  # warm-up: first renders of the replayed frames
                runtime_rounds.append((summary.throughput(skip=skip), cpu_per_set, summary))
                backend_rounds.append(backend_throughput(backend, feed, seconds=args.seconds))
            describe = backend.describe()

        print(f"model {manifest.model} {h}x{w}, {args.cameras} cameras, onnxruntime "
              f"{describe.get('onnxruntime', '?')} CPU, threads {args.threads or 'default'}, "
              f"{os.cpu_count()} cores visible, {args.rounds} rounds of {args.seconds:g} s")
        ratios = []
        for r, (rate, cpu_set, summary) in enumerate(runtime_rounds):
            around = (backend_rounds[r][0] + backend_rounds[r + 1][0]) / 2
            ratios.append(rate / around)
            print(f"round {r}: backend {backend_rounds[r][0]:.3f} -> {backend_rounds[r + 1][0]:.3f} sets/s "
                  f"({backend_rounds[r][1]:.3f} CPU s/set); runtime {rate:.3f} sets/s ({cpu_set:.3f} CPU s/set, "
                  f"{summary.sets_out} sets, {summary.sets_dropped} dropped, infer p50 "
                  f"{summary.percentiles('infer')[50]:.1f} ms, preprocess p50 "
                  f"{summary.percentiles('preprocess')[50]:.1f} ms, end-to-end p50 "
                  f"{summary.percentiles('end_to_end')[50]:.0f} ms); ratio {ratios[-1]:.3f}")
        base = float(np.mean([b for b, _ in backend_rounds]))
        runtime = float(np.mean([rate for rate, _, _ in runtime_rounds]))
        print(f"backend alone   : {base:8.3f} sets/s ({1e3 / base:.1f} ms per batch, mean of {len(backend_rounds)})")
        print(f"runtime pipeline: {runtime:8.3f} sets/s (mean of {len(runtime_rounds)})")
        print(f"efficiency      : {runtime / base:8.3f}  (per round: {', '.join(f'{x:.3f}' for x in ratios)}; "
              "target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
