"""`vitdeploy bench`: latency, throughput and deadline misses over backends, precisions and camera counts."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vitdeploy.cli.console import (
    console,
    err_console,
    handles_errors,
    parse_list,
    unmet_requests,
    warn_random_weights,
)
from vitdeploy.errors import VitDeployError
from vitdeploy.extras import Extra, require, require_command

EPILOG = (
    "Examples:\n\n"
    "  vitdeploy bench bundles/tiny-detr --cameras 1,6 --iterations 200 --json bench.json --plot bench.png\n\n"
    "  vitdeploy bench bundles/tiny-detr --precision fp32,fp16,int8 --backend onnxruntime --markdown bench.md\n\n"
    "  vitdeploy bench bundles/tiny-detr --cameras 6 --fps 10 --budget-ms 100 --duration 30   (deadline mode)\n\n"
    "  vitdeploy bench --compare before.json after.json\n\n"
    "  vitdeploy bench bundles/fused-detr --runtime --stand-in-ms 5 --cameras 6   (is the pipeline the limit?)\n\n"
    "  vitdeploy bench bundles/fused-detr --runtime --videos front.mp4,left.mp4 --backend onnxruntime\n\n"
    "A configuration that cannot run here (no int8 ONNX, no TensorRT) is listed as skipped with the "
    "reason; the command fails (exit 1) when nothing could run, or when a backend or precision named with "
    "--backend/--precision ran nowhere."
)


@handles_errors
def bench(
    bundle: Annotated[Path | None, typer.Argument(help="Bundle folder (from `vitdeploy export`).")] = None,
    backend: Annotated[str | None, typer.Option(
        help="Comma-separated: onnxruntime,torch,tensorrt; default onnxruntime,torch (+tensorrt if the bundle has engines).")] = None,
    precision: Annotated[str | None, typer.Option(
        help="Comma-separated: fp32,fp16,int8; default: what the bundle has for each backend.")] = None,
    cameras: Annotated[str | None, typer.Option(
        help="Comma-separated camera counts (batch sizes); default 1 and min(6, the bundle's max).")] = None,
    device: Annotated[str | None, typer.Option(
        help="cpu | cuda for every backend (onnxruntime: also tensorrt); default: each backend's own.")] = None,
    warmup: Annotated[int, typer.Option(help="Warm-up inferences per configuration, not measured.")] = 10,
    iterations: Annotated[int | None, typer.Option(
        help="Measured frame sets per configuration (default 100; 10 s in deadline mode).")] = None,
    duration: Annotated[float | None, typer.Option(help="Measure each configuration for this many seconds instead.")] = None,
    fps: Annotated[float | None, typer.Option(
        help="Deadline mode: cameras deliver this many frames per second, through the whole runtime.")] = None,
    budget_ms: Annotated[float | None, typer.Option(
        help="Deadline mode: end-to-end budget per frame set, ms (capture to results).")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the full report (with raw samples) here; "
                                                   "'-' writes it to stdout (the tables then go to stderr).")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown table here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of the latency distributions here.")] = None,
    compare: Annotated[tuple[Path, Path] | None, typer.Option(
        help="Compare two --json reports (A B): prints B/A for every configuration both ran.")] = None,
    allow_rejected: Annotated[bool, typer.Option("--allow-rejected", help="Also measure graphs that `calibrate "
                                                 "--min-agreement` rejected (recorded in the report).")] = False,
    runtime: Annotated[bool, typer.Option("--runtime", help="Runtime mode: the whole pipeline free-running on "
                                          "video files, against decoding the same files alone.")] = False,
    videos: Annotated[str | None, typer.Option(help="Runtime mode: comma-separated video files, one camera each; "
                                               "default --cameras generated ones at the bundle's source size.")] = None,
    stand_in_ms: Annotated[float | None, typer.Option(help="Runtime mode: a backend that sleeps this many ms per "
                                                      "frame set (a GPU's inference) instead of the real one.")] = None,
    rounds: Annotated[int, typer.Option(help="Runtime mode: runtime rounds (--duration s each, default 10), "
                                        "each between two decode-only rounds.")] = 2,
) -> None:
    """Measure a bundle's latency (min/mean/median/p90/p95/p99/max), throughput, host<->device
    transfers and peak memory for every backend x precision x camera count; with --fps and
    --budget-ms, run the rig on a real clock and count missed deadlines, jitter and camera skew."""
    if compare is not None:
        if bundle is not None:
            raise VitDeployError("give a BUNDLE to measure or --compare A.json B.json, not both")
        _compare(*compare)
        return
    if bundle is None:
        raise VitDeployError("give a BUNDLE folder to measure (or --compare A.json B.json)")
    require_command("bench")
    if runtime:
        from vitdeploy.cli.bench_runtime import bench_runtime

        bench_runtime(bundle, videos=parse_list(videos), cameras=cameras, stand_in_ms=stand_in_ms,
                      backend=backend, precision=precision, device=device, seconds=duration, rounds=rounds,
                      json_path=json_path)
        return
    if videos is not None or stand_in_ms is not None:
        raise VitDeployError("--videos and --stand-in-ms belong to runtime mode: add --runtime")
    if plot is not None:  # before measuring, not after
        require(Extra.PLOTS, needed_by="`vitdeploy bench --plot`")
    from vitdeploy.bench import BenchSettings, Deadline, plan
    from vitdeploy.bundle import Bundle, Precision
    from vitdeploy.runtime.configs import parse_cameras

    if (fps is None) != (budget_ms is None):
        raise VitDeployError("deadline mode needs both --fps and --budget-ms")
    settings = BenchSettings(warmup=warmup, iterations=iterations, duration_s=duration,
                             deadline=Deadline(fps, budget_ms) if fps is not None else None,
                             allow_rejected=allow_rejected)
    b = Bundle.open(bundle)
    precisions = [Precision.parse(p) for p in parse_list(precision)] or None
    configs = plan(b, backends=parse_list(backend) or None, precisions=precisions,
                   cameras=parse_cameras(parse_list(cameras)) or None, device=device, allow_rejected=allow_rejected)
    if any(c.backend == "torch" for c in configs):
        warn_random_weights(b.manifest)
    out = err_console if json_path is not None and str(json_path) == "-" else console  # stdout: the JSON alone

    mode = (f"deadline mode: {fps:g} fps, budget {budget_ms:g} ms" if fps is not None else "back-to-back inference")
    out.print(f"[bold]{b.manifest.model}[/] — {len(configs)} configurations, {mode}")
    report = _measure(b, configs, settings, out)
    _print_report(report, out)
    _write(report, out, json_path=json_path, markdown=markdown, plot=plot)
    unmet = unmet_requests([(r.config, r.ok) for r in report.results], backends=parse_list(backend),
                           precisions=precisions or [])
    if unmet:
        raise VitDeployError(f"asked for but nothing ran with: {', '.join(unmet)} (reasons above)")


def _measure(bundle, configs, settings, out: Console):
    """``bench_bundle`` with a progress bar per configuration."""
    from vitdeploy.bench import bench_bundle

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=out, transient=True) as bar:
        tasks: dict = {}

        def progress(config, fraction):
            if config not in tasks:
                tasks[config] = bar.add_task(config.label, total=1.0)
            bar.update(tasks[config], completed=fraction if fraction is not None else 0.0)

        return bench_bundle(bundle, configs, settings, progress=progress)


def _write(report, out: Console, *, json_path: Path | None, markdown: Path | None, plot: Path | None) -> None:
    """The report's files (JSON to stdout for ``--json -``); an error when nothing could run."""
    from vitdeploy.bench.report import to_markdown
    from vitdeploy.bundle import atomic_write_text

    if json_path is not None and str(json_path) == "-":
        sys.stdout.write(report.to_json())
        sys.stdout.flush()
    elif json_path is not None:
        out.print(f"wrote {report.write_json(json_path)}")
    if markdown is not None:
        atomic_write_text(markdown, to_markdown(report))
        out.print(f"wrote {markdown}")
    if not report.ran:
        raise VitDeployError("nothing could run: every configuration was skipped (reasons above)")
    if plot is not None:
        from vitdeploy.bench.plot import write_plot

        out.print(f"wrote {write_plot(report, plot)}")


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    for col in columns:
        table.add_column(col, justify="left" if col in ("backend", "prec") else "right", no_wrap=True)
    return table


def _print_report(report, out: Console = console) -> None:
    from vitdeploy.bench.report import PHASES
    from vitdeploy.runtime.machine import machine_line

    deadline = any(r.deadline for r in report.results)
    what = "end to end, capture to results" if deadline else "one inference of a frame set"
    head = ["backend", "prec", "cams"]
    lat = _table(f"latency, ms ({what})", head + ["min", "mean", "p50", "p90", "p95", "p99", "max"])
    rate = _table("throughput and resources", head + ["sets/s", "frames/s", "h2d/comp/d2h", "peak MiB"])
    settings = report.settings
    dl = _table(f"deadline: {settings.get('fps') or 0:g} fps per camera, budget {settings.get('budget_ms') or 0:g} ms",
                head + ["missed", "late", "drop", "jitter", "tail", "skew"])
    for r in report.ran:
        c, s = r.config, r.latency
        key = [c.backend, c.precision.value, str(c.cameras)]
        lat.add_row(*key, *(_fmt(v) for v in (s.min_ms, s.mean_ms, s.median_ms, s.p90_ms, s.p95_ms, s.p99_ms,
                                              s.max_ms)))
        split = "/".join(_fmt(r.transfer[p].median_ms, 2) if p in r.transfer else "-" for p in PHASES)
        rate.add_row(*key, _fmt(r.sets_per_s), _fmt(r.frames_per_s), split if r.transfer else "-",
                     _fmt(r.memory.peak_delta_mib if r.memory else None))
        if (d := r.deadline) is not None:
            color = "green" if d.missed == 0 else "red"
            dl.add_row(*key, f"[{color}]{d.missed}/{d.sets_out + d.dropped}[/]",
                       str(d.late), str(d.dropped), _fmt(d.jitter.std_ms), _fmt(d.jitter.p99_minus_p50_ms),
                       _fmt(d.skew.p99_ms))
    if report.ran:
        out.print(lat)
        out.print(rate)
        if deadline:
            out.print(dl)
            out.print("missed = late (end to end over the budget) + drop (sets dropped: a stage fell behind); "
                          "jitter / tail: std and p99-p50 of the intervals between completed sets, ms; skew: p99 "
                          "capture-time spread inside a set, ms", soft_wrap=True)
    for r in report.results:
        if not r.ok:
            out.print(f"[yellow]skipped[/] {r.config.label}: {escape(r.reason or '')}", soft_wrap=True)
    out.print(f"machine: {escape(machine_line(report.machine))}", soft_wrap=True)
    for warning in (report.machine.get("doctor") or {}).get("warnings", []):  # as `vitdeploy doctor` says them
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True, highlight=False)


def _compare(a_path: Path, b_path: Path) -> None:
    from vitdeploy.bench import compare_reports, load_report

    a, b = load_report(a_path), load_report(b_path)
    result = compare_reports(a, b)
    table = _table(f"B / A (A = {a_path.name}, B = {b_path.name}): latency < 1 or sets/s > 1 means B is faster",
                   ["backend", "prec", "cams", "p50 A", "p50 B", "p50 B/A", "p99 B/A", "sets/s B/A"])
    for r in result.ratios:
        c = r.config
        table.add_row(c.backend, c.precision.value, str(c.cameras), _fmt(r.a_median_ms, 2), _fmt(r.b_median_ms, 2),
                      _fmt(r.median, 3), _fmt(r.p99, 3), _fmt(r.throughput, 3))
    console.print(table)
    for name, only in (("A", result.only_a), ("B", result.only_b)):
        if only:
            console.print(f"only in {name}: " + ", ".join(c.label for c in only))
    console.print(f"A: {escape(a.bundle.get('model', '?'))} on {escape(_machine(a))}", soft_wrap=True)
    console.print(f"B: {escape(b.bundle.get('model', '?'))} on {escape(_machine(b))}", soft_wrap=True)
    if not result.ratios:
        raise VitDeployError("the two reports share no configuration that ran in both (matched on backend, "
                             "precision and cameras)")


def _machine(report) -> str:
    from vitdeploy.runtime.machine import machine_line

    return machine_line(report.machine)
