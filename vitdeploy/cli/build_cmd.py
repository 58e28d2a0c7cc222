"""`vitdeploy build`: a bundle's ONNX -> a strongly typed TensorRT engine, checked and recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from vitdeploy.cli.console import console, err_console, handles_errors

EPILOG = (
    "Examples:\n\n"
    "  vitdeploy build bundles/det --fp16 --max-cameras 6 --timing-cache ~/.cache/vitdeploy/orin.cache\n\n"
    "  vitdeploy build bundles/det --int8 --calib-data frames/ --dla-core 0\n\n"
    "  vitdeploy build bundles/det --fp16 --print-trtexec --trt-version 10"
)


@handles_errors
def build(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (from `vitdeploy export`).")],
    fp16: Annotated[bool, typer.Option("--fp16", help="Build the bundle's FP16 ONNX.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Build the bundle's INT8 (Q/DQ) ONNX.")] = False,
    calib_data: Annotated[Path | None, typer.Option(help="Calibration data (image folder, rig recording, video, "
                                                         ".npz or 'synthetic'); makes the FP16/INT8 ONNX first when "
                                                         "the bundle lacks it.")] = None,
    graph: Annotated[str | None, typer.Option(help="Build only this graph (default: every graph).")] = None,
    min_cameras: Annotated[int | None, typer.Option(help="Fewest cameras the engine takes (default 1).")] = None,
    opt_cameras: Annotated[int | None, typer.Option(help="Camera count TensorRT tunes for (default: the max).")] = None,
    max_cameras: Annotated[int | None, typer.Option(help="Most cameras the engine takes (default: the bundle's).")] = None,
    dim: Annotated[list[str] | None, typer.Option(help="Range of another dynamic axis, NAME=MIN:OPT:MAX "
                                                       "(e.g. points=1:4:16 for SAM's decoder).")] = None,
    workspace_gb: Annotated[float, typer.Option(help="Builder workspace limit in GiB.")] = 4.0,
    timing_cache: Annotated[Path | None, typer.Option(help="Timing cache to load and update (speeds up rebuilds).")] = None,
    builder_opt_level: Annotated[int | None, typer.Option(help="TensorRT builder optimisation level 0..5 "
                                                               "(default 3).")] = None,
    dla_core: Annotated[int | None, typer.Option(help="Run on this DLA core, with GPU fallback (Jetson/DRIVE).")] = None,
    version_compatible: Annotated[bool, typer.Option("--version-compatible",
                                                     help="Plan that later TensorRT releases can run too.")] = False,
    print_trtexec: Annotated[bool, typer.Option("--print-trtexec", help="Print the equivalent trtexec command "
                                                                        "and build nothing.")] = False,
    trt_version: Annotated[int | None, typer.Option(help="TensorRT generation (10 or 11) for --print-trtexec; "
                                                         "default: the installed one.")] = None,
    device: Annotated[str, typer.Option(help="GPU to build on: cuda or cuda:N.")] = "cuda",
    allow_rejected: Annotated[bool, typer.Option("--allow-rejected", help="Build from an ONNX that `calibrate "
                                                 "--min-agreement` rejected (recorded in the engine's options).")] = False,
) -> None:
    """Build a strongly typed TensorRT engine from BUNDLE's ONNX, check it against golden outputs and
    record it with its provenance in the manifest."""
    from vitdeploy.bundle import Precision
    from vitdeploy.tensorrt.build import BuildOptions, build_engines, trtexec_commands
    from vitdeploy.tensorrt.errors import BuildError
    from vitdeploy.tensorrt.profile import parse_dim
    from vitdeploy.tensorrt.trtexec import BuilderSettings

    if fp16 and int8:
        raise BuildError("choose one precision: --fp16 or --int8 (neither: fp32)")
    precision = Precision.FP16 if fp16 else Precision.INT8 if int8 else Precision.FP32
    dims = dict(parse_dim(d) for d in dim or [])
    settings = BuilderSettings(workspace_gb=workspace_gb, timing_cache=timing_cache,
                               builder_opt_level=builder_opt_level, dla_core=dla_core,
                               version_compatible=version_compatible)
    options = BuildOptions(precision=precision, graph=graph, min_cameras=min_cameras, opt_cameras=opt_cameras,
                           max_cameras=max_cameras, dims=dims, settings=settings, calib_data=calib_data,
                           allow_rejected=allow_rejected)
    if print_trtexec:
        for command in trtexec_commands(bundle, options, generation=trt_version):
            console.out(command, highlight=False)
        return
    if trt_version is not None:
        raise BuildError("--trt-version only goes with --print-trtexec; a build uses the installed TensorRT")

    with console.status("building") as status:
        results = build_engines(bundle, options, device=device, progress=lambda msg: status.update(f"{msg} ..."))
    failed = False
    for r in results:
        e = r.engine
        cams = e.profile.get("cameras")
        cameras = f", cameras {cams[0]}..{cams[2]} (opt {cams[1]})" if cams else ""
        console.print(f"[bold]{e.file}[/]: {e.precision.value}, TensorRT {e.tensorrt_version}, {escape(e.gpu_name)} "
                      f"(sm {e.compute_capability}){cameras}, built in {e.build_seconds:.1f} s", highlight=False,
                      soft_wrap=True)
        verdict = "[green]" if r.golden.passed else "[red]"
        console.print(f"  golden vs fp32 onnxruntime: {verdict}{escape(r.golden.summary())}[/]", highlight=False,
                      soft_wrap=True)
        if r.placement is not None:
            where = "[green]" if r.placement.on_dla else "[red]"
            console.print(f"  DLA core {e.dla_core}: {where}{escape(r.placement.summary())}[/]", highlight=False,
                          soft_wrap=True)
        failed = failed or not r.passed
    if failed:
        err_console.print("[bold red]error:[/] an engine disagrees with the golden outputs beyond its precision's "
                          "tolerance, or none of a DLA engine's layers run on the DLA; it is kept for inspection "
                          "and marked failed in the manifest", soft_wrap=True)
        raise typer.Exit(1)
