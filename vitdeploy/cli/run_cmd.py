"""`vitdeploy run`: a camera rig through a bundle, with a latency budget, to JSONL/video/live view."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vitdeploy.cli.console import console, err_console, handles_errors, parse_size, warn_random_weights
from vitdeploy.errors import VitDeployError
from vitdeploy.extras import Extra, require, require_command

EPILOG = (
    "Examples:\n\n"
    "  vitdeploy run bundles/tiny-detr --rig rig.toml --out runs/drive1 --duration 60\n\n"
    "  vitdeploy run bundles/tiny-detr --synthetic-cameras 6 --video mosaic --max-frames 100\n\n"
    "  vitdeploy run bundles/tiny-detr --camera drive.mcap --mcap results.mcap   (every image topic, "
    "free-running, sets by recorded stamp)\n\n"
    "Ctrl-C stops cleanly: the summary is printed and the JSONL and videos are complete.\n\n"
    "Exit code: 0 ran as asked; 1 error, or no frame set at all; 3 cameras were lost (named on stderr)."
)

#: Exit code of a run that went on without some of its cameras (they failed, stalled or were
#: being reopened at the end); 1 stays "error".
LOST_CAMERAS_EXIT = 3


@handles_errors
def run(
    bundle: Annotated[Path | None, typer.Argument(help="Bundle folder; default: the rig file's \\[model] bundle.")] = None,
    rig: Annotated[Path | None, typer.Option("--rig", help="Rig TOML file (see docs/rig.example.toml).")] = None,
    synthetic_cameras: Annotated[int | None, typer.Option(
        help="No rig file: this many synthetic cameras (1-6) at --fps.")] = None,
    camera: Annotated[list[str] | None, typer.Option(
        "--camera", help="No rig file: a camera URI, or NAME=URI (repeat for more): a video, image folder, "
        "device://0, rtsp://..., drive.mcap#/TOPIC; a recording without #TOPIC gives every image topic.")] = None,
    fps: Annotated[float | None, typer.Option(
        help="Sets per second of --synthetic-cameras (default 10) or --camera rigs (default 0); 0: free-running, "
             "as fast as the model goes (recordings: every frame, sets by recorded stamp).")] = None,
    synthetic_size: Annotated[str | None, typer.Option(
        help="HxW pixels of --synthetic-cameras frames; default: the model's input size.")] = None,
    backend: Annotated[str | None, typer.Option(help="onnxruntime | torch | tensorrt; default: the rig's.")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 | fp16 | int8; default: the rig's.")] = None,
    device: Annotated[str | None, typer.Option(
        help="onnxruntime: cpu | cuda | tensorrt (provider); torch: cpu | cuda; default: the rig's.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder; default: the rig's, else runs/BUNDLE.")] = None,
    video: Annotated[str | None, typer.Option(help="none | per-camera | mosaic; default: the rig's.")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frame sets.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Live terminal view of fps, latency and health.")] = True,
    mcap: Annotated[Path | None, typer.Option(help="Also write the results as an MCAP file Foxglove opens "
                                                 "(boxes per camera, status per set); default: the rig's.")] = None,
    mcap_images: Annotated[bool, typer.Option("--mcap-images", help="Store the camera frames in the --mcap file "
                                              "too (JPEG).")] = False,
    allow_rejected: Annotated[bool, typer.Option("--allow-rejected", help="Run a graph that `calibrate "
                                                 "--min-agreement` rejected (said in the summary).")] = False,
    exported_geometry: Annotated[bool, typer.Option(
        "--exported-geometry", help="Rig-level (3D) models: a camera without \\[cameras.geometry] takes the geometry "
                                    "the bundle was exported with (the synthetic rig's).")] = False,
) -> None:
    """Run a multi-camera rig through a bundle's model: sources -> sync -> preprocess -> backend ->
    postprocess -> JSONL / annotated video / live view, then print a latency summary."""
    require_command("run")
    from vitdeploy.bundle import Precision
    from vitdeploy.runtime.rig import GeometrySource, VideoMode
    from vitdeploy.runtime.run import RunOptions, run_rig

    the_rig, b = _rig_and_bundle(bundle, rig=rig, synthetic_cameras=synthetic_cameras, camera=camera, fps=fps,
                                 synthetic_size=synthetic_size)
    model_cfg = the_rig.model
    if backend is not None:
        model_cfg = dataclasses.replace(model_cfg, backend=backend)
    if precision is not None:
        model_cfg = dataclasses.replace(model_cfg, precision=Precision.parse(precision))
    if device is not None:
        model_cfg = dataclasses.replace(model_cfg, device=device)
    if allow_rejected:
        model_cfg = dataclasses.replace(model_cfg, allow_rejected=True)
    if exported_geometry:
        model_cfg = dataclasses.replace(model_cfg, geometry=GeometrySource.EXPORTED)
    outputs = dataclasses.replace(the_rig.outputs, live=live)
    if mcap is not None:
        outputs = dataclasses.replace(outputs, mcap=str(mcap.resolve()))
    if mcap_images:
        outputs = dataclasses.replace(outputs, mcap_images=True)
    if video is not None:
        modes = [m.value for m in VideoMode]
        if video not in modes:
            raise VitDeployError(f"--video {video!r}: choose one of {', '.join(modes)}")
        outputs = dataclasses.replace(outputs, video=VideoMode(video))
    the_rig = dataclasses.replace(the_rig, model=model_cfg, outputs=outputs)
    if out is None and the_rig.outputs.dir is None:
        out = Path("runs") / b.path.resolve().name

    if model_cfg.backend == "torch":
        require(Extra.EXPORT, needed_by="the torch backend")
        warn_random_weights(b.manifest)
    console.print(f"[bold]{b.manifest.model}[/] on {model_cfg.backend} ({model_cfg.device or 'default device'}, "
                  f"{model_cfg.precision.value}), {len(the_rig.cameras)} cameras, "
                  + (f"{the_rig.rate_hz:g} sets/s" if the_rig.rate_hz > 0 else "free-running")
                  + f", budget {the_rig.latency_budget_ms:g} ms")
    summary = run_rig(the_rig, bundle=b, options=RunOptions(out=out, max_frames=max_frames, duration=duration),
                      console=console if live and console.is_terminal else None)
    _print_summary(summary)
    _exit_for(summary)


def _rig_and_bundle(bundle: Path | None, *, rig: Path | None, synthetic_cameras: int | None, camera: list[str] | None,
                    fps: float | None, synthetic_size: str | None):
    """The rig (from --rig, --synthetic-cameras or --camera) and the bundle it runs."""
    from vitdeploy.bundle import Bundle
    from vitdeploy.runtime.rig import load_rig, synthetic_rig, uri_rig
    from vitdeploy.runtime.run import resolve_bundle

    if sum(x is not None and x != [] for x in (rig, synthetic_cameras, camera)) != 1:
        raise VitDeployError("give one of --rig RIG.toml, --synthetic-cameras N or --camera URI")
    if rig is not None:
        the_rig = load_rig(rig)
        return the_rig, resolve_bundle(the_rig, bundle)
    if bundle is None:
        raise VitDeployError("--synthetic-cameras and --camera need a BUNDLE argument")
    b = Bundle.open(bundle)
    if camera:
        return uri_rig(camera, rate_hz=fps or 0.0, fps=fps or 10.0), b
    rate = 10.0 if fps is None else fps
    size = parse_size(synthetic_size, option="--synthetic-size") or tuple(b.manifest.image_size)
    return synthetic_rig(synthetic_cameras, fps=rate if rate > 0 else 10.0, size=size,
                         rate_hz=rate if rate > 0 else 0.0), b


def _exit_for(summary) -> None:
    """Exit codes a script can trust: 1 when no frame set came out at all, ``LOST_CAMERAS_EXIT``
    when cameras were lost (named on stderr), else 0 (also after Ctrl-C: that is how a run without
    --duration or --max-frames is meant to end)."""
    lost = summary.lost_cameras
    said = "; ".join(f"{c.name} ({c.health.value}{': ' + c.last_error if c.last_error else ''})" for c in lost)
    if summary.sets_out == 0:
        raise VitDeployError("no frame set was produced" + (f"; cameras lost: {said}" if lost else ""))
    if lost:
        err_console.print(f"[bold yellow]cameras lost:[/] {escape(said)}", highlight=False, soft_wrap=True)
        raise typer.Exit(LOST_CAMERAS_EXIT)


def _print_summary(summary) -> None:
    from vitdeploy.runtime.stats import LATENCIES

    cams = Table(title="cameras: frames in (from the source) and out (in frame sets)", title_justify="left")
    for col in ("camera", "in", "out", "skipped", "missing", "corrupt", "reopened", "health"):
        cams.add_column(col, no_wrap=True)
    cams.add_column("last error", overflow="fold")
    for c in summary.cameras:
        color = "green" if c.health.value == "ok" else "yellow" if c.health.value in ("stalled", "reconnecting") else "red"
        cams.add_row(c.name, str(c.frames_in), str(c.frames_out), str(c.skipped), str(c.missing), str(c.corrupt),
                     str(c.reconnects), f"[{color}]{c.health.value}[/]", escape(c.last_error or ""))
    console.print(cams)
    lat = Table(title="latency, ms per frame set", title_justify="left")
    for col in ("", "p50", "p95", "p99", "max"):
        lat.add_column(col, justify="right")
    for name in LATENCIES:
        p = summary.percentiles(name, (50, 95, 99, 100))
        lat.add_row(name.replace("_", "-"), *(f"{p[q]:.1f}" for q in (50, 95, 99, 100)))
    console.print(lat)
    drops = ", ".join([f"{n} sets before {stage}" for stage, n in summary.dropped.items() if n]
                      + [f"{c.skipped} frames of {c.name}" for c in summary.cameras if c.skipped]
                      + [f"{n} sets by the {name} sink (behind)" for name, n in summary.sink_dropped.items() if n]
                      ) or "none"
    e2e = summary.percentiles("end_to_end", (99,))[99]
    rate = summary.throughput(skip=min(5, max(0, summary.sets_out - 2)))
    console.print(f"{summary.sets_out} frame sets in {summary.duration_s:.1f} s ({rate:.1f} sets/s); "
                  f"dropped: {drops}; deadline misses: {summary.deadline_misses} over {summary.budget_ms:g} ms "
                  f"(p99 {e2e:.1f} ms); stopped by {summary.stopped_by}", soft_wrap=True)
    if summary.zero_copy_sets:
        console.print(f"{summary.zero_copy_sets} frame sets went to the model as the cameras decoded them "
                      "(no copy)", soft_wrap=True)
    for f in ([summary.jsonl] if summary.jsonl else []) + summary.videos + ([summary.mcap] if summary.mcap else []):
        console.print(f"wrote {f}")
    for line in summary.overrides:
        console.print(f"[yellow]note:[/] {escape(line)}", soft_wrap=True)
