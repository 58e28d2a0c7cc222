#!/usr/bin/env python3
"""The runtime at GPU speed: frame sets/s of `run_rig` on N 1080p video files against decoding alone.

The measurement is ``vitdeploy.bench.runtime`` (the same as `vitdeploy bench BUNDLE --runtime`,
see its docstring); this script brings its own subject, made once and cached in ``--cache``: N
generated 1080p mp4v files and a fused-preprocessing bundle of ``--model`` for them (demo-detr,
BGR: the decoders' frames go in as they come). The backend is a stand-in that sleeps
``--backend-ms`` per frame set (GIL released, as a GPU call) and returns the real model's outputs,
or a real one (``--backend onnxruntime|torch`` with ``--device`` and ``--precision``).

    python tools/bench_runtime.py --cameras 6 --backend-ms 5 --seconds 10

Target: runtime >= 0.9 x decode-only with a 5 ms backend and 6 x 1080p cameras.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from vitdeploy.bench.runtime import DEFAULT_CACHE


def make_bundle(cache: Path, *, model: str, cameras: int, size: tuple[int, int], order: str):
    from vitdeploy.bundle import Bundle

    h, w = size
    folder = cache / f"bundle_{model}_{h}x{w}_{order.lower()}_{cameras}cam"
    if (folder / "manifest.json").is_file():
        return Bundle.open(folder)
    from vitdeploy.exporter.export import ExportOptions, export_model

    print(f"exporting {model} with fused preprocessing for {h}x{w} {order} frames ...", flush=True)
    # atol 5e-3: the resize from 1080p sums ~20 source pixels per input pixel in a different order
    # than PyTorch; demo-detr's logits then differ by ~1e-3, over the default FP32 tolerance
    return export_model(model, out=folder, options=ExportOptions(
        max_cameras=cameras, fuse_preprocess=True, source_size=(h, w), source_channel_order=order,
        atol=5e-3)).bundle


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo-detr", help="zoo model exported with fused preprocessing")
    ap.add_argument("--cameras", type=int, default=6)
    ap.add_argument("--source-size", default="1080x1920", help="HxW of the video files, pixels")
    ap.add_argument("--channel-order", default="BGR", choices=("BGR", "RGB"),
                    help="the fused graph's source channel order (decoders give BGR)")
    ap.add_argument("--frames", type=int, default=60, help="frames per generated video (looped)")
    ap.add_argument("--backend-ms", type=float, default=5.0, help="stand-in inference time per set, ms")
    ap.add_argument("--backend", default="stand-in", choices=("stand-in", "onnxruntime", "torch"),
                    help="the stand-in (sleeps --backend-ms) or a real backend")
    ap.add_argument("--device", default=None, help="device of a real backend (torch: cpu | cuda)")
    ap.add_argument("--precision", default="fp32", help="precision of a real backend (fp32 | fp16)")
    ap.add_argument("--jsonl", action=argparse.BooleanOptionalAction, default=True, help="write the JSONL sink")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each round, s")
    ap.add_argument("--rounds", type=int, default=2, help="runtime rounds, each between two decode-only rounds")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="folder for the videos and bundle")
    ap.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    ap.add_argument("--decoder-threads", type=int, default=0,
                    help="FFmpeg threads per camera, runtime and decode-only alike (0: cores / cameras, at least 1)")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.source_size.lower().split("x"))

    from vitdeploy.bench.runtime import (
        RuntimeSettings,
        first_batch,
        generated_videos,
        measure_runtime,
        stand_in_backend,
    )
    from vitdeploy.runtime.backends import open_backend

    paths = generated_videos(args.cache, cameras=args.cameras, size=size, frames=args.frames)
    bundle = make_bundle(args.cache, model=args.model, cameras=args.cameras, size=size, order=args.channel_order)
    batch = first_batch(bundle, paths)
    if args.backend == "stand-in":
        backend = stand_in_backend(bundle, batch, ms=args.backend_ms)
    else:
        from vitdeploy.models.exported import exported_model

        model = exported_model(bundle.manifest) if args.backend == "torch" else None
        backend = open_backend(args.backend, bundle, precision=args.precision, device=args.device, model=model)
        for _ in range(3):  # warm-up: kernel choice, CUDA graph capture
            backend.infer({backend.inputs[0].name: batch})
    settings = RuntimeSettings(seconds=args.seconds, rounds=args.rounds,
                               stand_in_ms=args.backend_ms if args.backend == "stand-in" else None, jsonl=args.jsonl,
                               decoder_threads=args.decoder_threads)
    report = measure_runtime(bundle, paths, backend, settings)
    print(f"{args.model} fused ({args.channel_order}), sinks: {'jsonl' if args.jsonl else '-'}; "
          f"{os.cpu_count()} cores visible; {args.rounds} rounds of {args.seconds:g} s")
    print("\n".join(report.lines()))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
