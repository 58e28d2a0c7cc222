#!/usr/bin/env python3
"""Parameters and CPU latency of a rig model's parts: the encoder on all cameras vs the rig head.

PyTorch eager, FP32, no grad, the explicit attention path (what the ONNX graph holds): median
and best of --runs, and the GFLOPs torch's FlopCounterMode counts (steady where a busy machine
makes the timings jump). The head is
timed on the encoder's tokens with the synthetic rig's geometry; the ray encoding (the part of the
head that geometry-as-input recomputes every frame) is also timed alone.

Example:
  .venv/bin/python tools/bench_rig3d.py --model vit-tiny-rig3d --cameras 6 --size 256x448
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from vitdeploy.data.geometry import CameraGeometry, geometry_feed
from vitdeploy.data.rig import rig_cameras
from vitdeploy.models.rig_model import get_rig3d


def timed_ms(fn, *, runs: int, warmup: int = 2) -> dict[str, float]:
    """Median and best of ``runs`` calls, milliseconds (the best is the steadier figure on a busy machine)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median": round(statistics.median(times), 2), "min": round(min(times), 2)}


def gflops(fn) -> float:
    """Floating-point operations of one call (matmuls and convolutions, as torch counts them), 1e9."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return round(counter.get_total_flops() / 1e9, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit-tiny-rig3d")
    ap.add_argument("--cameras", type=int, default=6)
    ap.add_argument("--size", default="256x448", help="HxW per camera")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    spec = get_rig3d(args.model)
    model = spec.build(fused_attention=False).eval().requires_grad_(False)
    model.encoder.set_grid(model.encoder.grid_for(h, w))
    geometry = [CameraGeometry.from_rig_camera(c) for c in rig_cameras((h, w), count=args.cameras)]
    feed = geometry_feed(geometry, image_size=(h, w))
    intr, ext = (torch.from_numpy(feed[k]).unsqueeze(0) for k in ("intrinsics", "cam_to_ego"))
    images = torch.from_numpy(np.random.default_rng(0).standard_normal((args.cameras, 3, h, w), np.float32))
    grid = model.encoder.grid_for(h, w)
    with torch.no_grad():
        tokens = model.encoder(images).unsqueeze(0)
        result = {
            "model": spec.name, "cameras": args.cameras, "size": [h, w], "keys": args.cameras * grid[0] * grid[1],
            "threads": torch.get_num_threads(),
            "encoder_params": sum(p.numel() for p in model.encoder.parameters()),
            "head_params": sum(p.numel() for p in model.head.parameters()),
            "encoder_gflops": gflops(lambda: model.encoder(images)),
            "head_gflops": gflops(lambda: model.head(tokens, intrinsics=intr, cam_to_ego=ext, grid=grid)),
            "ray_encoding_gflops": gflops(lambda: model.head.rays(intr, ext, grid)),
            "encoder_ms": timed_ms(lambda: model.encoder(images), runs=args.runs),
            "head_ms": timed_ms(lambda: model.head(tokens, intrinsics=intr, cam_to_ego=ext, grid=grid), runs=args.runs),
            "ray_encoding_ms": timed_ms(lambda: model.head.rays(intr, ext, grid), runs=args.runs),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
