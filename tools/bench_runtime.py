#!/usr/bin/env python3
"""The runtime at GPU speed: frame sets/s of `run_rig` on N 1080p video files against decoding alone.

With inference taking a few milliseconds (a ViT on a Jetson or DRIVE GPU) the Python work around
it — decode, colour, batching, post-processing, sinks — decides throughput. This measures exactly
that, free-running (``rate_hz = 0``), on this machine:

* N generated video files (mp4v, ``--source-size``, made once and cached in ``--cache``);
* a fused-preprocessing bundle of ``--model`` for that source size (exported once, cached);
* a backend stand-in that sleeps ``--backend-ms`` per frame set (``time.sleep`` releases the GIL,
  as a GPU call does) and returns the real model's outputs for real frames, so post-processing
  decodes real detections; or a real backend (``--backend onnxruntime`` or ``torch``, with
  ``--device`` and ``--precision``: the torch backend preprocesses the raw frames on the device);
* decode-only: the same number of threads decoding the same files with the same decoder
  (OpenCV ``VideoCapture.read``), nothing else, in the same process.

Decode-only and runtime rounds alternate (decode, runtime, decode, ...); each runtime round is
compared with the mean of the decode rounds around it. CPU milliseconds per set are split by
thread (``time.pthread_getcpuclockid``): camera threads, each pipeline stage, and everything
else in the process (the decoder's and ONNX Runtime's own threads).

    python tools/bench_runtime.py --cameras 6 --backend-ms 5 --seconds 15

Target: runtime >= 0.9 x decode-only with a 5 ms backend and 6 x 1080p cameras.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path.home() / ".cache" / "vitdeploy" / "bench_runtime"


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _stage_of(name: str) -> str:
    if name.startswith("source-"):
        return "cameras (decode)"
    if name.startswith("pipeline-"):
        return name.removeprefix("pipeline-")
    if name.startswith("sink-"):
        return "sink " + name.removeprefix("sink-")
    if name == "MainThread":
        return "main"
    return "other python"


class CpuMeter:
    """Process CPU seconds split by thread between ``start`` and ``stop``. Threads that end before
    ``split`` (a run's own threads) are read by ``sample`` calls made while they are alive (the
    last 50 ms of a thread can be missed: they count under "library threads")."""

    def __init__(self) -> None:
        self.start_total = cpu_seconds()
        self.seen: dict[threading.Thread, tuple[str, float, float]] = {}  # thread -> (stage, first, last)
        self.sample()

    def sample(self) -> None:
        for t in threading.enumerate():
            try:
                seconds = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
            except (OSError, TypeError):
                continue
            stage, first, _ = self.seen.get(t, (_stage_of(t.name), seconds, seconds))
            self.seen[t] = (stage, first, seconds)

    def split(self) -> tuple[float, dict[str, float]]:
        """(process CPU seconds, CPU seconds per stage incl. "decoder/ORT threads" for the rest)."""
        total = cpu_seconds() - self.start_total
        by: dict[str, float] = defaultdict(float)
        for stage, first, last in self.seen.values():
            by[stage] += last - first
        by["library threads"] = max(0.0, total - sum(by.values()))
        return total, dict(by)


def make_videos(cache: Path, *, cameras: int, size: tuple[int, int], frames: int, fps: float) -> list[Path]:
    """N mp4v files of synthetic driving scenes at ``size`` (H, W), ``frames`` long; cached."""
    import cv2

    from vitdeploy.data.scenes import SceneGenerator

    h, w = size
    folder = cache / f"videos_{h}x{w}_{frames}f"
    paths = [folder / f"cam{i}.mp4" for i in range(cameras)]
    if all(p.is_file() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    # render a few ticks at a low resolution and pan/zoom them up: a 1080p render per frame is slow
    gen = SceneGenerator(size=(h // 4, w // 4), cameras=min(cameras, 6), seed=3, with_masks=False)
    for i, path in enumerate(paths):
        tmp = path.with_suffix(".tmp.mp4")
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for k in range(frames):
            small = gen.frame(k, i % 6).image
            big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
            noise = np.random.default_rng(k * 31 + i).integers(0, 12, big.shape, dtype=np.uint8)
            writer.write(cv2.cvtColor(cv2.add(big, noise), cv2.COLOR_RGB2BGR))
        writer.release()
        tmp.rename(path)
    return paths


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


def stand_in_backend(bundle, outputs: dict[str, np.ndarray], *, ms: float):
    """A backend that sleeps ``ms`` per ``infer`` (GIL released) and returns ``outputs``."""
    from vitdeploy.bundle.manifest import CAMERA_AXIS
    from vitdeploy.runtime.backends.base import Backend

    class SleepBackend(Backend):
        name = "stand-in"

        def _infer(self, feed):
            time.sleep(ms / 1e3)
            return {k: v.copy() for k, v in outputs.items()}

        def describe(self):
            return {"backend": f"stand-in {ms:g} ms"}

    g = bundle.manifest.graph()
    return SleepBackend(inputs=g.inputs, outputs=g.outputs,
                        dim_ranges={CAMERA_AXIS: (1, bundle.manifest.max_cameras)})


def decode_only(paths: list[Path], *, seconds: float) -> tuple[float, float]:
    """Each file decoded in its own thread (``VideoCapture.read``, looping) for ``seconds``;
    returns (frame sets/s: the slowest camera's frames per second, process CPU ms per set)."""
    import cv2

    counts = [0] * len(paths)
    stop = threading.Event()

    def decode(i: int) -> None:
        cap = cv2.VideoCapture(str(paths[i]))
        while not stop.is_set():
            ok, _ = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            counts[i] += 1
        cap.release()

    threads = [threading.Thread(target=decode, args=(i,), daemon=True) for i in range(len(paths))]
    cpu, start = cpu_seconds(), time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    n = min(counts)
    elapsed = time.perf_counter() - start
    cpu_used = cpu_seconds() - cpu
    for t in threads:
        t.join()
    return n / elapsed, cpu_used / max(1, sum(counts) / len(paths)) * 1e3


def runtime_round(rig, bundle, backend, *, out: Path, seconds: float):
    """One free-running `run_rig` of ``seconds``; returns (summary, sets/s, CPU ms per set by stage)."""
    from vitdeploy.runtime.run import RunOptions, run_rig

    meter = CpuMeter()
    done = threading.Event()

    def poll() -> None:  # the run's threads end with it: read their clocks while they live
        while not done.wait(0.05):
            meter.sample()

    poller = threading.Thread(target=poll, name="bench-poll", daemon=True)
    poller.start()
    try:
        summary = run_rig(rig, bundle=bundle, backend=backend,
                          options=RunOptions(out=out, duration=seconds, handle_sigint=False))
    finally:
        done.set()
        poller.join()
    total, by = meter.split()
    sets = max(1, summary.sets_out)
    skip = min(5, max(0, summary.sets_out - 5))
    return summary, summary.throughput(skip=skip), total / sets * 1e3, {k: v / sets * 1e3 for k, v in by.items()}


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
    ap.add_argument("--video", action="store_true", help="also write the annotated mosaic video")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each round, s")
    ap.add_argument("--rounds", type=int, default=2, help="runtime rounds, each between two decode-only rounds")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="folder for the videos and bundle")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.source_size.lower().split("x"))

    import tempfile

    import cv2

    from vitdeploy.runtime.backends.onnxruntime import from_bundle
    from vitdeploy.runtime.rig import Camera, ModelConfig, Outputs, Rig, VideoMode

    paths = make_videos(args.cache, cameras=args.cameras, size=size, frames=args.frames, fps=30.0)
    bundle = make_bundle(args.cache, model=args.model, cameras=args.cameras, size=size, order=args.channel_order)
    real = from_bundle(bundle)
    frames = []
    for p in paths:
        cap = cv2.VideoCapture(str(p))
        ok, bgr = cap.read()
        cap.release()
        frames.append(bgr if args.channel_order == "BGR" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    feed = {real.inputs[0].name: np.stack(frames)}
    if args.backend == "stand-in":
        backend = stand_in_backend(bundle, real.infer(feed), ms=args.backend_ms)
    else:
        from vitdeploy.models.exported import exported_model
        from vitdeploy.runtime.backends import open_backend

        model = exported_model(bundle.manifest) if args.backend == "torch" else None
        backend = open_backend(args.backend, bundle, precision=args.precision, device=args.device, model=model)
        for _ in range(3):  # warm-up: kernel choice, CUDA graph capture
            backend.infer(feed)

    cams = tuple(Camera(name=f"cam{i}", source=str(p), fps=30.0, loop=True) for i, p in enumerate(paths))
    rig = Rig(cameras=cams, model=ModelConfig(bundle=bundle.path), rate_hz=0.0, latency_budget_ms=1e6,
              startup_timeout_s=10.0,
              outputs=Outputs(jsonl="frames.jsonl" if args.jsonl else None,
                              video=VideoMode.MOSAIC if args.video else VideoMode.NONE, live=False))
    load = os.getloadavg()
    decode_rounds = [decode_only(paths, seconds=args.seconds)]
    runtime_rounds = []
    with tempfile.TemporaryDirectory(prefix="bench_runtime.") as tmp:
        for r in range(args.rounds):
            runtime_rounds.append(runtime_round(rig, bundle, backend, out=Path(tmp) / f"run{r}", seconds=args.seconds))
            decode_rounds.append(decode_only(paths, seconds=args.seconds))
    load_after = os.getloadavg()

    h, w = size
    info = backend.describe()
    backend_name = (f"{args.backend_ms:g} ms (sleep)" if args.backend == "stand-in" else
                    ", ".join(f"{k} {v}" for k, v in info.items() if k != "backend"))
    print(f"{args.cameras} x {h}x{w} mp4v files, {args.model} fused ({args.channel_order}), backend {args.backend} "
          f"{backend_name}, sinks: {'jsonl' if args.jsonl else '-'}{' + video' if args.video else ''}; "
          f"{os.cpu_count()} cores visible; load average {load[0]:.2f} -> {load_after[0]:.2f}; "
          f"{args.rounds} rounds of {args.seconds:g} s")
    ratios = []
    for r, (summary, rate, cpu_ms, by) in enumerate(runtime_rounds):
        around = (decode_rounds[r][0] + decode_rounds[r + 1][0]) / 2
        ratios.append(rate / around)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(by.items(), key=lambda kv: -kv[1]) if v >= 0.05)
        print(f"round {r}: decode-only {decode_rounds[r][0]:.1f} -> {decode_rounds[r + 1][0]:.1f} sets/s "
              f"({decode_rounds[r][1]:.1f} CPU ms/set); runtime {rate:.1f} sets/s, {cpu_ms:.1f} CPU ms/set "
              f"({summary.sets_out} sets, {summary.sets_dropped} dropped, {summary.zero_copy_sets} decoded "
              f"straight into the batch); ratio {ratios[-1]:.3f}")
        print(f"         runtime CPU ms/set by thread: {stages}")
        print("         stage p50 ms: " + ", ".join(
            f"{k} {summary.percentiles(k, (50,))[50]:.1f}" for k in ("preprocess", "infer", "postprocess", "sink")
            if k in summary.latency_ms))
    decode = float(np.mean([d for d, _ in decode_rounds]))
    runtime = float(np.mean([r for _, r, _, _ in runtime_rounds]))
    print(f"decode-only : {decode:7.1f} sets/s (mean of {len(decode_rounds)}; "
          f"spread {min(d for d, _ in decode_rounds):.1f}..{max(d for d, _ in decode_rounds):.1f})")
    print(f"runtime     : {runtime:7.1f} sets/s (mean of {len(runtime_rounds)})")
    print(f"ratio       : {runtime / decode:7.3f}  (per round: {', '.join(f'{x:.3f}' for x in ratios)}; "
          "target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
