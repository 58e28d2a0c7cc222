#!/usr/bin/env python3
"""Run once on a machine with a CUDA GPU: the GPU tests, the torch CUDA backend's latency, and the
runtime benchmark with a real backend; prints a short report (and writes it with ``--report``).

1. ``pytest -m gpu``: the gpu-marked tests (the torch backend's CUDA graphs and FP16; TensorRT's
   where TensorRT is installed, else skipped with the reason).
2. Latency of one frame set, numpy in and numpy out, on ``--model`` (vit-base-detr) at
   ``--cameras`` x ``--image-size`` (6 x 448x800): the torch backend eager, with static pinned
   batches and CUDA graphs, in FP32 and FP16, against ``torch.compile(mode="reduce-overhead")`` of
   the same model in the same process.
3. ``tools/bench_runtime.py`` with the torch backend on the GPU (fused preprocessing, 6 x 1080p
   video files) against decoding alone.

``--dry-run`` runs every step on the CPU with a tiny model and small frames (and compiles with
torch's "eager" backend), so that every import and path is checked without a GPU:

    python tools/gpu_check.py                 # on the GPU machine (about 10 minutes)
    python tools/gpu_check.py --dry-run       # anywhere (about 2 minutes)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_tests(*, dry_run: bool) -> str:
    """The gpu-marked tests (collected only in a dry run: the CPU would skip them all)."""
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", "tests"]
    if dry_run:
        cmd.append("--collect-only")
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
    if dry_run:  # "path: count" per test file
        counts = [int(ln.rsplit(": ", 1)[1]) for ln in lines if ln.startswith("tests/") and ln.rsplit(": ", 1)[-1].isdigit()]
        summary = f"{sum(counts)} gpu tests collected in {len(counts)} files"
    else:
        skips = [ln for ln in lines if ln.startswith("SKIPPED")]
        summary = "\n".join(skips + lines[-1:]) if lines else done.stderr.strip()[-300:]
    return f"exit {done.returncode}: {summary}"


def time_ms(fn, *, repeats: int, warmup: int) -> tuple[float, float]:
    """(p50, min) milliseconds of ``fn()`` over ``repeats`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), min(samples)


def latency_rows(*, model_name: str, cameras: int, size: tuple[int, int], device: str, repeats: int,
                 dry_run: bool) -> list[tuple[str, float, float]]:
    """(configuration, p50 ms, min ms) for the torch backend's paths and torch.compile."""
    import torch

    from vitdeploy.bundle.manifest import Preprocessing, TensorSpec
    from vitdeploy.models.zoo import get_card
    from vitdeploy.runtime.backends.torch import TorchBackend

    h, w = size
    model = get_card(model_name).build()
    model.encoder.set_grid(model.encoder.grid_for(h, w))
    model.eval()
    outputs = [TensorSpec(name, "float32", []) for name in ("logits", "boxes")]
    x = np.random.default_rng(0).standard_normal((cameras, 3, h, w)).astype(np.float32)
    cuda = device.startswith("cuda")
    configs = [("eager fp32", dict(precision="fp32", static=False, cuda_graphs=False)),
               ("static pinned batch fp32", dict(precision="fp32", static=True, cuda_graphs=False))]
    if cuda:
        configs += [("CUDA graph fp32", dict(precision="fp32", static=True, cuda_graphs=True)),
                    ("eager fp16", dict(precision="fp16", static=False, cuda_graphs=False)),
                    ("CUDA graph fp16", dict(precision="fp16", static=True, cuda_graphs=True))]
    rows = []
    for name, kw in configs:
        backend = TorchBackend(model, inputs=[TensorSpec("images", "float32", ["cameras", 3, h, w])], outputs=outputs,
                               device=device, preprocessing=Preprocessing(image_size=(h, w)), **kw)
        p50, best = time_ms(lambda b=backend: b.infer({"images": x}), repeats=repeats, warmup=3)
        info = backend.describe()
        rows.append((f"torch backend, {name} (graphs {info['cuda_graphs']})", p50, best))
        backend.close()
        model = model.float()  # the fp16 backend converted the shared module
    for dtype, label in ((torch.float32, "fp32"), (torch.float16, "fp16")) if cuda else ((torch.float32, "fp32"),):
        net = model.to(device, dtype)
        compiled = torch.compile(net, backend="eager") if dry_run else torch.compile(net, mode="reduce-overhead")

        def call(c=compiled, d=dtype):
            with torch.inference_mode():
                out = c(torch.from_numpy(x).to(device, d))
                out = out.values() if isinstance(out, dict) else out
                return [v.float().cpu().numpy() for v in out]

        p50, best = time_ms(call, repeats=repeats, warmup=5)
        rows.append((f"torch.compile({'backend=eager' if dry_run else 'mode=reduce-overhead'}) {label}", p50, best))
        model = model.float()
    return rows


def runtime_bench(*, dry_run: bool, device: str, seconds: float) -> str:
    """tools/bench_runtime.py with the torch backend; its last lines."""
    cmd = [sys.executable, str(ROOT / "tools" / "bench_runtime.py"), "--backend", "torch", "--device", device,
           "--precision", "fp32" if dry_run else "fp16", "--seconds", str(seconds), "--rounds", "1"]
    if dry_run:
        cmd += ["--model", "vit-test-detr", "--source-size", "270x480", "--frames", "10", "--cameras", "2"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return f"exit {done.returncode}\n" + "\n".join(lines[-9:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="every step on the CPU, tiny model (no GPU needed)")
    ap.add_argument("--model", default=None, help="zoo model for the latency step (default vit-base-detr)")
    ap.add_argument("--cameras", type=int, default=None, help="camera batch (default 6; dry run 2)")
    ap.add_argument("--image-size", default=None, help="HxW model input (default 448x800; dry run 64x96)")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per configuration (default 50)")
    ap.add_argument("--seconds", type=float, default=None, help="runtime benchmark round length, s")
    ap.add_argument("--report", type=Path, default=None, help="also write the report to this file")
    args = ap.parse_args()

    import torch

    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print(f"torch {torch.__version__} sees no CUDA GPU; run this on the GPU machine, or --dry-run to check "
              "the script on the CPU", file=sys.stderr)
        return 2
    device = "cpu" if dry else "cuda"
    model = args.model or ("vit-test-detr" if dry else "vit-base-detr")
    cameras = args.cameras or (2 if dry else 6)
    size = tuple(int(v) for v in (args.image_size or ("64x96" if dry else "448x800")).lower().split("x"))
    repeats = args.repeats or (5 if dry else 50)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (dry run on the CPU)"
    report = [f"# gpu_check{' (dry run)' if dry else ''}",
              f"machine: {platform.node()}, GPU {gpu}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
              f"Python {platform.python_version()}"]
    print(report[-1], flush=True)

    report.append(f"\n## gpu-marked tests\n{run_tests(dry_run=dry)}")
    print(report[-1], flush=True)

    start = len(report)
    report.append(f"\n## latency of one frame set: {model}, {cameras} x {size[0]}x{size[1]}, {device}, "
                  f"p50 / min of {repeats}, ms (numpy in, numpy out)")
    for name, p50, best in latency_rows(model_name=model, cameras=cameras, size=size, device=device,
                                        repeats=repeats, dry_run=dry):
        report.append(f"- {name}: {p50:.2f} / {best:.2f}")
    print("\n".join(report[start:]), flush=True)

    seconds = args.seconds or (2.0 if dry else 10.0)
    report.append(f"\n## runtime benchmark, torch backend on {device}\n{runtime_bench(dry_run=dry, device=device, seconds=seconds)}")
    print(report[-1], flush=True)
    if args.report is not None:
        args.report.write_text("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
