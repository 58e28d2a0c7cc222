"""`vitdeploy export`: a zoo model to an ONNX bundle with proven parity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitdeploy.cli.console import console, handles_errors, parse_list, parse_size
from vitdeploy.cli.report import print_export_summary
from vitdeploy.errors import VitDeployError
from vitdeploy.extras import require_command

EPILOG = (
    "Examples:\n\n"
    "  vitdeploy export vit-tiny-detr --out bundles/tiny-detr --image-size 448x800 --max-cameras 6\n\n"
    "  vitdeploy export sam-vit-b --checkpoint sam_vit_b_01ec64.pth --out bundles/sam-b\n\n"
    "  vitdeploy export demo-detr --fuse-preprocess --source-size 1080x1920 --channel-order BGR --out bundles/fused\n\n"
    "  vitdeploy export vit-tiny-tab --checkpoint tab-2tasks.pt --tasks 3 --task-classes 10,10,12 --out bundles/tab"
)


def _parse_counts(value: str | None, *, option: str) -> list[int] | None:
    """'10,10,12' -> [10, 10, 12]."""
    if value is None:
        return None
    items = parse_list(value)
    if not items or not all(v.isdigit() for v in items):
        raise VitDeployError(f"{option} {value!r} is not a comma-separated list of class counts, e.g. 10,10,12")
    return [int(v) for v in items]


@handles_errors
def export(
    model: Annotated[str, typer.Argument(help="Zoo model name (see `vitdeploy models`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write.")],
    checkpoint: Annotated[Path | None, typer.Option(help="Weights: .safetensors, or .pt/.pth (loaded with weights_only).")] = None,
    image_size: Annotated[str | None, typer.Option(help="Input HxW in pixels, multiples of the patch size; default: the model's.")] = None,
    max_cameras: Annotated[int, typer.Option(help="Largest camera count (batch) the graph accepts.")] = 8,
    opset: Annotated[int, typer.Option(help="ONNX opset (17..21; 17+ keeps LayerNorm one op).")] = 18,
    tasks: Annotated[int | None, typer.Option(help="*-tab models: number of tasks; a checkpoint with fewer is grown.")] = None,
    task_classes: Annotated[str | None, typer.Option(help="*-tab models: classes per task, e.g. 10,10,12.")] = None,
    fuse_preprocess: Annotated[bool, typer.Option(help="Put resize + normalisation into the graph: it takes raw uint8 "
                                                       "frames (cameras, H, W, 3) of --source-size.")] = False,
    source_size: Annotated[str | None, typer.Option(help="With --fuse-preprocess: HxW of the camera frames.")] = None,
    channel_order: Annotated[str, typer.Option(help="With --fuse-preprocess: channel order of the frames, RGB or BGR.")] = "RGB",
) -> None:
    """Export MODEL to ONNX: one bundle folder with model.onnx and manifest.json, parity checked."""
    require_command("export")
    from vitdeploy.exporter.export import ExportOptions, export_model

    options = ExportOptions(image_size=parse_size(image_size), max_cameras=max_cameras, opset=opset, tasks=tasks,
                            task_classes=_parse_counts(task_classes, option="--task-classes"),
                            fuse_preprocess=fuse_preprocess, source_size=parse_size(source_size, option="--source-size"),
                            source_channel_order=channel_order)
    with console.status("exporting") as status:
        result = export_model(model, out=out, checkpoint=checkpoint, options=options,
                              progress=lambda msg: status.update(f"{msg} ..."))
    print_export_summary(result.bundle, seconds=result.seconds, files=result.files)
