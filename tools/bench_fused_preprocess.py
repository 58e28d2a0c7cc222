#!/usr/bin/env python3
"""Preprocessing fused into the graph vs on the CPU: agreement, CPU time, runtime throughput.

For demo-detr, with camera frames of --source-size (default 1080x1920, what automotive cameras
deliver), on the same frames and in the same process:

1. pixel-level difference of the two preprocessings (OpenCV resize + normalise on the CPU vs the
   graph's Resize/Sub/Mul), in grey levels;
2. detection agreement: COCO mAP of the fused graph's detections taking the unfused graph's
   (fed by the CPU preprocessing) as ground truth (faster-coco-eval);
3. CPU milliseconds per frame set spent in preprocessing: `prepare_batch` for each bundle (the
   fused bundle only stacks the raw frames);
4. end-to-end frame sets/s of `vitdeploy run` (run_rig, free-running synthetic cameras rendered at
   the source size and replayed) on onnxruntime for both bundles.

    python tools/bench_fused_preprocess.py --cameras 6 --source-size 1080x1920
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_ms(fn, repeats: int) -> float:
    t0 = os.times()
    for _ in range(repeats):
        fn()
    t1 = os.times()
    return (t1.user + t1.system - t0.user - t0.system) / repeats * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo-detr")
    ap.add_argument("--cameras", type=int, default=6)
    ap.add_argument("--source-size", default="1080x1920")
    ap.add_argument("--frames", type=int, default=60, help="frames for the agreement check")
    ap.add_argument("--run-sets", type=int, default=20, help="frame sets per `vitdeploy run` measurement")
    args = ap.parse_args()
    sh, sw = (int(v) for v in args.source_size.split("x"))

    from vitdeploy.data.scenes import SceneGenerator
    from vitdeploy.exporter.export import ExportOptions, export_model
    from vitdeploy.exporter.fused_preprocess import FusedPreprocess
    from vitdeploy.heads import head_for
    from vitdeploy.heads.metrics import detection_map
    from vitdeploy.runtime.backends.onnxruntime import cpu_session
    from vitdeploy.runtime.preprocess import prepare_batch
    from vitdeploy.runtime.rig import ModelConfig, Outputs, synthetic_rig
    from vitdeploy.runtime.run import RunOptions, run_rig

    work = Path(tempfile.mkdtemp(prefix="bench-fused-"))
    plain = export_model(args.model, out=work / "plain", options=ExportOptions(max_cameras=args.cameras)).bundle
    fused = export_model(args.model, out=work / "fused", options=ExportOptions(
        max_cameras=args.cameras, fuse_preprocess=True, source_size=(sh, sw))).bundle
    head = head_for(plain.manifest)
    size = tuple(plain.manifest.image_size)
    print(f"{args.model}: model input {size[0]}x{size[1]}, camera frames {sh}x{sw}, {args.cameras} cameras")

    gen = SceneGenerator(size=(sh, sw), cameras=6, seed=7, with_masks=False)
    frames = [gen.frame(t * 5, t % 6).image for t in range(args.frames)]

    # 1 + 2: agreement on the same frames
    import torch

    sp, sf = cpu_session(plain.onnx_path()), cpu_session(fused.onnx_path())
    pre_f = FusedPreprocess(fused.manifest.preprocessing)
    diffs, dets_p, dets_f = [], [], []
    std = np.asarray(plain.manifest.preprocessing.std, np.float32).reshape(1, 3, 1, 1) * 255
    for i in range(0, len(frames), args.cameras):
        chunk = frames[i:i + args.cameras]
        images, boxes = prepare_batch(chunk, plain.manifest.preprocessing)
        raw, raw_boxes = prepare_batch(chunk, fused.manifest.preprocessing)
        with torch.no_grad():
            diffs.append(np.abs(pre_f(torch.from_numpy(raw)).numpy() - images) * std)
        lp, bp = sp.run(None, {"images": images})
        lf, bf = sf.run(None, {"frames": raw})
        dets_p += head.detections({"logits": lp, "boxes": bp}, boxes, score_threshold=0.5)
        dets_f += head.detections({"logits": lf, "boxes": bf}, raw_boxes, score_threshold=0.05)
    d = np.concatenate([x.ravel() for x in diffs])
    agreement = detection_map(dets_f, dets_p, num_classes=len(plain.manifest.class_names), image_size=(sh, sw))
    print(f"pixel difference of the two preprocessings (grey levels): max {d.max():.2f}, mean {d.mean():.3f}, "
          f"{(d > 0.5).mean() * 100:.2f}% over half a level")
    print(f"detection agreement, fused vs unfused (unfused detections at score >= 0.5 as ground truth, "
          f"{sum(len(x) for x in dets_p)} boxes): mAP@[.5:.95] {agreement.map:.4f}, mAP@.5 {agreement.map50:.4f}")

    # 3: CPU ms per frame set in preprocessing
    batch = frames[:args.cameras]
    for name, b in (("unfused (OpenCV resize + normalise)", plain), ("fused (stack raw frames)", fused)):
        ms = cpu_ms(lambda b=b: prepare_batch(batch, b.manifest.preprocessing), 10)
        print(f"CPU time per {args.cameras}-camera frame set in preprocessing, {name}: {ms:.1f} ms")

    # 4: end-to-end frame sets/s through the runtime
    for name, b in (("unfused", plain), ("fused", fused)):
        rig = synthetic_rig(args.cameras, size=(sh, sw), seed=7, loop=8, rate_hz=0.0,
                            model=ModelConfig(bundle=b.path), outputs=Outputs(jsonl=None, live=False))
        start = time.perf_counter()
        s = run_rig(rig, bundle=b, options=RunOptions(out=work / f"run-{name}", max_frames=args.run_sets))
        wall = time.perf_counter() - start
        pre = s.percentiles("preprocess", (50,))[50]
        print(f"`vitdeploy run` {name}: {s.throughput(skip=2):.2f} frame sets/s, preprocess stage p50 {pre:.1f} ms "
              f"(wall {wall:.0f} s for {s.sets_out} sets)")


if __name__ == "__main__":
    main()
