"""`vitdeploy replay`: a bundle over many recordings at several precisions, on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from vitdeploy.cli.console import console, err_console, handles_errors
from vitdeploy.errors import VitDeployError
from vitdeploy.extras import require_command

EPILOG = (
    "Examples:\n\n"
    "  vitdeploy replay bundles/demo-detr --data 'drives/*.mcap' --precision fp16,int8 --out runs/replay\n\n"
    "  vitdeploy replay bundles/demo-detr --data drives.txt --address ray://head:10001 --gpus-per-worker 0.5 "
    "--backend tensorrt\n\n"
    "--data: a glob (each match is a recording), a folder (each entry is one), a text file listing paths, a "
    "video, an image folder, a folder of per-camera videos, an MCAP file or ROS 2 bag, a COCO set. A re-run skips recordings whose outputs "
    "are complete for the same bundle files and settings.\n\n"
    "Exit code: 0 every recording replayed; 1 error, or none could be replayed; 3 some recordings failed "
    "(listed on stderr, the others are complete)."
)

#: Exit code of a replay in which some recordings failed while the others completed.
FAILED_RECORDINGS_EXIT = 3


@handles_errors
def replay(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    data: Annotated[list[str], typer.Option("--data", "-d", help="Recordings: glob, folder, file or list file "
                                            "(repeat for more).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder; default runs/replay-BUNDLE.")] = None,
    precision: Annotated[str | None, typer.Option(help="Comma list, e.g. fp16,int8; FP32 (the reference) is always "
                                                  "replayed; default: every precision the bundle has.")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray workers; default: this machine's cores (the cluster's "
                                                "CPUs with --address); 0: no Ray, in this process.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray "
                                                "started and stopped here).")] = None,
    gpus_per_worker: Annotated[float, typer.Option(help="GPUs per Ray worker (0.5: two share one).")] = 0.0,
    cpus_per_worker: Annotated[float, typer.Option(help="CPUs per Ray worker.")] = 1.0,
    backend: Annotated[str, typer.Option(help="onnxruntime | torch | tensorrt.")] = "onnxruntime",
    device: Annotated[str | None, typer.Option(help="As for `vitdeploy run`; default: the backend's.")] = None,
    score_threshold: Annotated[float, typer.Option(help="Detections kept in the JSONL, 0..1 (default: the agreement's "
                                                   "prediction floor, as calibration measures it).")] = 0.05,
    top_k: Annotated[int, typer.Option(help="Detections kept per camera frame.")] = 100,
    lowest: Annotated[int, typer.Option(help="Recordings of lowest agreement the report lists first.")] = 10,
    max_retries: Annotated[int, typer.Option(help="Restarts of a worker that died, and retries of its recording.")] = 2,
    allow_rejected: Annotated[bool, typer.Option("--allow-rejected", help="Replay a graph `calibrate "
                                                 "--min-agreement` rejected.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display and no Ray worker logs.")] = False,
) -> None:
    """Replay a bundle over many recordings — free-running, every frame, through the code `vitdeploy run` uses —
    at each precision, on Ray; write the JSONL per recording and precision, a summary per recording (agreement
    with FP32, mAP against labels, latency) and a report with the recordings of lowest agreement first."""
    require_command("replay")
    from vitdeploy.bundle import Bundle, Precision
    from vitdeploy.replay import ReplayOptions, find_recordings
    from vitdeploy.replay import replay as run_replay

    b = Bundle.open(bundle)
    recordings = find_recordings(data)
    precisions = tuple(Precision.parse(p) for p in precision.split(",") if p.strip()) if precision else ()
    options = ReplayOptions(out=out or Path("runs") / f"replay-{b.path.resolve().name}", precisions=precisions,
                            backend=backend, device=device, score_threshold=score_threshold, top_k=top_k,
                            allow_rejected=allow_rejected, workers=workers, address=address,
                            gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
                            max_retries=max_retries, lowest=lowest, quiet=quiet)
    where = "in this process" if workers == 0 else f"on Ray at {address}" if address else "on Ray"
    console.print(f"[bold]{b.manifest.model}[/]: {len(recordings)} recordings {where}, {backend}")
    show = console.is_terminal and not quiet
    with Progress(TextColumn("[bold]replaying[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("recordings"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not show) as progress:
        task = progress.add_task("replay", total=len(recordings))

        def advance(result) -> None:
            progress.advance(task)
            if not result.ok:
                progress.console.print(f"[red]failed[/] {escape(result.recording.id)}: {escape(result.reason)}",
                                       highlight=False, soft_wrap=True)

        report = run_replay(b, recordings, options=options, on_result=advance)
    _print_report(report)
    if not report.complete:
        raise VitDeployError("no recording could be replayed; the reasons are above and in "
                             f"{report.files[0]}")
    if report.failed:
        said = "; ".join(f"{r.recording.id} ({r.reason})" for r in report.failed)
        err_console.print(f"[bold yellow]{len(report.failed)} recordings failed:[/] {escape(said)}", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(FAILED_RECORDINGS_EXIT)


def _print_report(report) -> None:
    from vitdeploy.replay.report import figure

    table = Table(title="precisions over all recordings", title_justify="left")
    for col in ("precision", "recordings", "frames", "detections", "agreement mean", "agreement min", "mAP vs labels",
                "e2e p50 ms", "e2e p99 ms"):
        table.add_column(col, justify="right" if col != "precision" else "left")
    for p, a in report.precisions().items():
        table.add_row(p, str(a["recordings"]), str(a["frames"]), str(a["detections"]), figure(a["agreement"]["mean"]),
                      figure(a["agreement"]["min"]), figure(a["truth_map"]["mean"]), figure(a["end_to_end_ms"]["p50_median"], 1),
                      figure(a["end_to_end_ms"]["p99_max"], 1))
    console.print(table)
    ranked = [r for r in report.ranked() if r.summary.get("agreement") is not None][:report.lowest]
    if ranked:
        console.print("lowest agreement with FP32: " + ", ".join(f"{escape(r.recording.id)} "
                                                                f"{r.summary['agreement']:.3f}" for r in ranked),
                      soft_wrap=True)
    reused = len(report.complete) - len(report.replayed)
    console.print(f"{len(report.replayed)} recordings replayed, {reused} complete from before, "
                  f"{len(report.failed)} failed, in {report.seconds:.1f} s {report.scheduler}")
    for f in report.files:
        console.print(f"wrote {f}")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)

