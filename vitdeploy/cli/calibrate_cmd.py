"""`vitdeploy calibrate`: FP16 / INT8 (Q/DQ) ONNX of a bundle, with an accuracy report vs FP32."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from vitdeploy.cli.console import console, err_console, handles_errors, parse_list
from vitdeploy.errors import VitDeployError
from vitdeploy.extras import require_command

EPILOG = (
    "Examples:\n\n"
    "  vitdeploy calibrate bundles/tiny-detr --precision fp16\n\n"
    "  vitdeploy calibrate bundles/tiny-detr --precision int8 --data recordings/drive01 --min-agreement 0.9\n\n"
    "  vitdeploy calibrate bundles/tiny-detr --precision int8 --data drives/0412.mcap --topics /cam_front/image_raw\n\n"
    "  vitdeploy calibrate bundles/tiny-detr --precision int8 --sensitivity --auto-fallback --min-agreement 0.95"
)


class PrecisionChoice(str, Enum):
    fp16 = "fp16"
    int8 = "int8"


class MethodChoice(str, Enum):
    entropy = "entropy"
    max = "max"


class HighPrecisionChoice(str, Enum):
    fp16 = "fp16"
    fp32 = "fp32"


@handles_errors
def calibrate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder made by `vitdeploy export`.")],
    precision: Annotated[PrecisionChoice, typer.Option(help="Precision of the ONNX to write.")],
    data: Annotated[str, typer.Option(help="Image folder, rig recording (folder of camera folders), video file, "
                                           "MCAP/.db3/ROS 2 bag recording (all image topics, or PATH#TOPIC), "
                                           ".npz of preprocessed inputs, or 'synthetic'.")] = "synthetic",
    topics: Annotated[list[str] | None, typer.Option(
        help="Image topics of a --data recording to calibrate on; repeat or comma-separate (default: all).")] = None,
    method: Annotated[MethodChoice, typer.Option(help="INT8 activation calibration.")] = MethodChoice.entropy,
    samples: Annotated[int, typer.Option(help="Calibration frames (a rig model: frame sets; a warning below 128).")] = 256,
    heldout: Annotated[int, typer.Option(help="Held-out frames (a rig model: frame sets) for the accuracy report (disjoint from calibration).")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the frame sampling.")] = 0,
    exclude: Annotated[list[str] | None, typer.Option(
        help="Layers to keep out of INT8: module paths (encoder.blocks.11.mlp), globs, node names; repeat or "
             "comma-separate.")] = None,
    high_precision: Annotated[HighPrecisionChoice, typer.Option(
        help="INT8 graph's non-quantized part: fp16 for TensorRT, fp32 runs faster on a CPU.")] = HighPrecisionChoice.fp16,
    attention_tokens: Annotated[int, typer.Option(
        help="Quantize the two attention matmuls only where attention spans at most this many tokens "
             "(keys); above ~64 INT8 softmax probabilities lose too much.")] = 64,
    min_agreement: Annotated[float | None, typer.Option(
        help="Fail (exit 1, variant marked rejected) when task agreement with FP32 is below this (0..1).")] = None,
    sensitivity: Annotated[bool, typer.Option("--sensitivity", help="Rank layer groups by what quantizing each costs.")] = False,
    auto_fallback: Annotated[bool, typer.Option(
        "--auto-fallback", help="Keep the worst layer groups in high precision until --min-agreement holds.")] = False,
) -> None:
    """Write model.fp16.onnx or model.int8.onnx (Q/DQ) beside model.onnx and prove its accuracy vs FP32."""
    require_command("calibrate")
    from vitdeploy.calibration import (
        CalibrationMethod,
        CalibrationOptions,
        HighPrecision,
        Int8Recipe,
        calibrate_bundle,
    )

    patterns = tuple(p for value in (exclude or []) for p in parse_list(value))
    if topics:
        if "#" in data:
            raise VitDeployError(f"--data {data!r} names its topics already; drop --topics or the #TOPIC")
        data = f"{data}#{','.join(t for value in topics for t in parse_list(value))}"
    recipe = Int8Recipe(method=CalibrationMethod(method.value), high_precision=HighPrecision(high_precision.value),
                        attention_tokens=attention_tokens, exclude=patterns)
    options = CalibrationOptions(samples=samples, heldout=heldout, seed=seed, recipe=recipe,
                                 min_agreement=min_agreement, sensitivity=sensitivity, auto_fallback=auto_fallback)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                for t in tasks.values():  # one stage at a time: finish the previous ones
                    bar.update(t, visible=False)
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        result = calibrate_bundle(bundle, precision=precision.value, data=data, options=options, progress=progress)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    print_result(result)
    if result.status.value == "rejected":
        err_console.print(f"[bold red]error:[/] task agreement {_fmt(result.report.agreement)} is below "
                          f"--min-agreement {min_agreement}; {result.onnx_path.name} is kept for inspection and "
                          "marked rejected in the manifest", highlight=False)
        raise typer.Exit(1)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_result(result) -> None:
    report = result.report
    d = result.data
    console.print(f"[bold]{result.precision.value}[/] {result.onnx_path} "
                  f"({result.onnx_path.stat().st_size / 1e6:.1f} MB) in {result.seconds:.1f} s")
    console.print(f"data: {escape(d.source)} ({d.kind.value}), {d.samples} calibration + {d.heldout_samples} held-out "
                  f"{d.unit}, seed {d.seed}, sha256 {d.sha256[:12]}", highlight=False)
    if result.placement is not None:
        s = result.placement.summary()
        console.print(f"INT8 layers: {s['quantized_layers']} quantized ({s['quantized_attention_matmuls']} attention "
                      f"matmuls); kept in high precision: {len(s['kept_layers'])}", highlight=False)
        by_reason: dict[str, list[str]] = {}
        for path, why in s["kept_layers"].items():
            by_reason.setdefault(why, []).append(path)
        for why, paths in by_reason.items():
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            console.print(f"  [dim]{escape(why)}: {escape(shown)}[/]", highlight=False)
    if result.fp16 is not None:
        kept = ", ".join(f"{op} {n}" for op, n in result.fp16.fp32_ops.items())
        console.print(f"FP16: kept in FP32: {kept or 'nothing'}", highlight=False)

    table = Table(title=f"{report.precision} vs FP32 on {report.frames} held-out {d.unit}", title_justify="left")
    for col in ("output", "max abs", "mean abs", "cosine", "worst frame cosine"):
        table.add_column(col, justify="left" if col == "output" else "right")
    for name, t in report.outputs.items():
        table.add_row(name, f"{t.max_abs:.3g}", f"{t.mean_abs:.3g}", f"{t.cosine:.6f}", f"{t.min_frame_cosine:.6f}")
    console.print(table)
    task = report.task
    if task is not None:
        verdict = ""
        if report.min_agreement is not None:
            verdict = " [green]pass[/]" if report.passed else " [red]FAIL[/]"
            verdict += f" (min {report.min_agreement})"
        console.print(f"task agreement: [bold]{_fmt(task.value)}[/] {escape(task.description)}{verdict}", highlight=False)
        if task.reason:
            console.print(f"  [yellow]{escape(task.reason)}[/]", highlight=False)
    if result.sensitivity:
        st = Table(title="sensitivity: each layer group quantized alone", title_justify="left")
        for col in ("group", "agreement", "cost", "worst cosine"):
            st.add_column(col, justify="left" if col == "group" else "right")
        for g in result.sensitivity[:15]:
            st.add_row(g.group, _fmt(g.agreement), f"{g.cost:.4f}", f"{g.cosine:.6f}")
        console.print(st)
        suggestion = result.suggested_exclude or [g.group for g in result.sensitivity[:3]]
        console.print("suggested: " + " ".join(f"--exclude {escape(g)}" for g in suggestion), highlight=False)
    if result.fallback is not None:
        fb = result.fallback
        kept = ", ".join(fb.excluded) or "none needed"
        console.print(f"auto-fallback: kept in high precision: {escape(kept)} (agreement {_fmt(fb.agreement)} on "
                      f"the sensitivity frames)", highlight=False)
    console.print(f"report: {result.report_path}   ModelOpt log: {result.log_path}   "
                  f"manifest: {result.variant.file} {escape(f'[{result.status.value}]')}", highlight=False)
