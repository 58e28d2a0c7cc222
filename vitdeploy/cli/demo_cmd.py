"""`vitdeploy demo`: export, FP16/INT8, a 6-camera rig and accuracy, in one command on a CPU."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vitdeploy.cli.console import console, handles_errors
from vitdeploy.extras import require_command

EPILOG = "Example:  vitdeploy demo --out runs/demo   (a second run reuses the bundle and re-measures)"


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


@handles_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the bundle, videos, JSONL and reports.")] = Path("runs/demo"),
    cameras: Annotated[int, typer.Option(help="Synthetic cameras in the rig (1-6).")] = 6,
    frames: Annotated[int, typer.Option(help="Frame sets per precision through the runtime.")] = 40,
    eval_frames: Annotated[int, typer.Option(help="Held-out generated frames for the mAP of each precision.")] = 120,
) -> None:
    """Export the shipped demo-detr detector, make FP16 and INT8 versions, run a synthetic camera rig
    through the runtime at each precision, score each against ground truth, and print one table."""
    require_command("demo")
    from vitdeploy.demo import run_demo

    with console.status("demo") as status:
        result = run_demo(out=out, cameras=cameras, frames=frames, eval_frames=eval_frames,
                          progress=lambda m: (status.update(f"{m} ..."), console.log(m)))
    table = Table(title=f"demo-detr, {cameras} cameras, onnxruntime on this CPU", title_justify="left")
    for col in ("precision", "latency p50 ms", "p99 ms", "frame sets/s", "mAP@.5", "mAP@[.5:.95]"):
        table.add_column(col, justify="left" if col == "precision" else "right")
    for r in result.rows:
        table.add_row(r.precision.value, _f(r.p50_ms, ".1f"), _f(r.p99_ms, ".1f"), _f(r.sets_per_s, ".2f"),
                      _f(r.map50, ".3f"), _f(r.map, ".3f"))
    console.print(table)
    if result.reused:
        console.print(f"reused from an earlier run: {', '.join(result.reused)}")
    if result.video:
        console.print(f"annotated mosaic video: {result.video}")
    for path in result.jsonl:
        console.print(f"per-frame-set results (JSONL): {path}")
    console.print(f"bench JSON: {result.bench_json}\naccuracy JSON: {result.eval_json}\n"
                  f"bundle: {result.out / 'bundle'}  (try `vitdeploy info {result.out / 'bundle'}`)\n"
                  f"done in {result.seconds:.0f} s")
