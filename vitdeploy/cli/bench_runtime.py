"""`vitdeploy bench --runtime`: the whole pipeline free-running on video files, against decoding
the same files alone (``vitdeploy.bench.runtime``)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from vitdeploy.cli.console import console, warn_random_weights
from vitdeploy.errors import VitDeployError

#: Video size generated for a bundle without fused preprocessing (which declares no source size).
DEFAULT_VIDEO_SIZE = (1080, 1920)


def bench_runtime(bundle_path: Path, *, videos: list[str], cameras: str | None, stand_in_ms: float | None,
                  backend: str | None, precision: str | None, device: str | None, seconds: float | None,
                  rounds: int, json_path: Path | None) -> None:
    """Measure, print, and write ``--json`` if asked."""
    from vitdeploy.bench.runtime import (
        DEFAULT_CACHE,
        TARGET_RATIO,
        RuntimeSettings,
        generated_videos,
        measure_runtime,
    )
    from vitdeploy.bundle import Bundle, atomic_write_text

    if rounds < 1 or (seconds is not None and seconds <= 0) or (stand_in_ms is not None and stand_in_ms < 0):
        raise VitDeployError("runtime mode needs --rounds >= 1, --duration > 0 s and --stand-in-ms >= 0")
    if stand_in_ms is not None and (backend or precision or device):
        raise VitDeployError("--stand-in-ms replaces the backend: give it, or --backend/--precision/--device, "
                             "not both")
    b = Bundle.open(bundle_path)
    manifest = b.manifest
    if videos:
        paths = [Path(v) for v in videos]
    else:
        n = _camera_count(cameras, manifest.max_cameras)
        size = tuple(manifest.preprocessing.source_size) if manifest.preprocessing.fused else DEFAULT_VIDEO_SIZE
        console.print(f"videos: {n} generated at {size[0]}x{size[1]} (kept in {DEFAULT_CACHE})")
        paths = generated_videos(DEFAULT_CACHE, cameras=n, size=size)
    if len(paths) > manifest.max_cameras:
        raise VitDeployError(f"{len(paths)} videos, but bundle {b.path} takes 1..{manifest.max_cameras} cameras; "
                             "give fewer or re-export it with --max-cameras")
    run_backend = _backend(b, paths, stand_in_ms=stand_in_ms, backend=backend, precision=precision, device=device)
    settings = RuntimeSettings(seconds=seconds or 10.0, rounds=rounds, stand_in_ms=stand_in_ms)
    console.print(f"[bold]{manifest.model}[/] runtime mode: {len(paths)} cameras, free-running, JSONL sink; "
                  f"{rounds} runtime round{'s' if rounds > 1 else ''} of {settings.seconds:g} s between decode-only rounds")
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                      transient=True) as bar:
            task = bar.add_task("decode-only", total=1.0)
            report = measure_runtime(b, paths, run_backend, settings,
                                     progress=lambda what, f: bar.update(task, completed=f, description=what))
    finally:
        run_backend.close()
    _print(report, target=TARGET_RATIO)
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        console.print(f"wrote {json_path}")


def _camera_count(cameras: str | None, max_cameras: int) -> int:
    if cameras is None:
        return min(6, max_cameras)
    try:
        n = int(cameras)
    except ValueError:
        raise VitDeployError(f"runtime mode takes one camera count, e.g. --cameras 6, got {cameras!r}") from None
    if not 1 <= n <= max_cameras:
        raise VitDeployError(f"--cameras {n}: the bundle takes 1..{max_cameras} cameras")
    return n


def _backend(bundle, paths: list[Path], *, stand_in_ms: float | None, backend: str | None, precision: str | None,
             device: str | None):
    """The stand-in (returning the FP32 model's outputs for the videos' first frames) or the real backend."""
    from vitdeploy.bench.runtime import first_batch, stand_in_backend
    from vitdeploy.runtime.backends import open_backend

    if stand_in_ms is not None:
        return stand_in_backend(bundle, first_batch(bundle, paths), ms=stand_in_ms)
    kind = backend or "onnxruntime"
    if "," in kind or (precision and "," in precision):
        raise VitDeployError("runtime mode measures one backend at one precision: e.g. --backend tensorrt "
                             "--precision fp16")
    model = None
    if kind == "torch":
        from vitdeploy.models.exported import exported_model

        warn_random_weights(bundle.manifest)
        model = exported_model(bundle.manifest)
    return open_backend(kind, bundle, precision=precision or "fp32", device=device, model=model)


def _print(report, *, target: float) -> None:
    verdict = "green" if report.ratio >= target else "yellow"
    for line in report.lines(target=target):
        text = escape(line)
        console.print(f"[{verdict}]{text}[/]" if line.startswith("decode-only") else text, soft_wrap=True,
                      highlight=False)
