"""`vitdeploy export`: a zoo model (on a pretrained backbone, with your classes) or your own PyTorch
factory to an ONNX bundle with proven parity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from vitdeploy.cli.console import console, err_console, handles_errors, parse_list, parse_size
from vitdeploy.cli.head_options import (
    BoxFormatOption,
    ClassesOption,
    HeadOption,
    MeanOption,
    PixelBoxesOption,
    ScoreOption,
    StdOption,
    declared_anything,
    head_spec,
    parse_classes,
    parse_triple,
)
from vitdeploy.cli.report import print_export_summary
from vitdeploy.errors import VitDeployError
from vitdeploy.extras import require_command

EPILOG = (
    "Examples:\n\n"
    "  vitdeploy export vit-tiny-detr --out bundles/tiny-detr --image-size 448x800 --max-cameras 6\n\n"
    "  vitdeploy export vit-small-detr --backbone dinov2_vits14_reg4.pth --classes car,truck,bus,pedestrian,cyclist "
    "--image-size 448x798 --out bundles/dino-detr\n\n"
    "  vitdeploy export vit-small-detr --checkpoint finetuned.safetensors --image-size 448x798 --out bundles/ft\n\n"
    "  vitdeploy export my_pkg.models:build_detector --head detr --score sigmoid --classes car,truck "
    "--image-size 448x800 --out bundles/mine\n\n"
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
    model: Annotated[str, typer.Argument(help="Zoo model name (see `vitdeploy models`), or your factory: "
                                              "pkg.module:function or path/model.py:function.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write.")],
    checkpoint: Annotated[Path | None, typer.Option(help="Weights: .safetensors, or .pt/.pth (loaded with weights_only).")] = None,
    image_size: Annotated[str | None, typer.Option(help="Input HxW in pixels, multiples of the patch size; default: the model's.")] = None,
    max_cameras: Annotated[int | None, typer.Option(
        help="Largest camera count (batch) the graph accepts (default 8; a rig model: its camera slots).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (17..21; 17+ keeps LayerNorm one op).")] = 18,
    backbone: Annotated[Path | None, typer.Option(help="Zoo models: a pretrained encoder (timm, DINOv2 or Hugging Face "
                                                       "checkpoint or folder) the head is built on.")] = None,
    classes: ClassesOption = None,
    mean: MeanOption = None,
    std: StdOption = None,
    head: HeadOption = None,
    score: ScoreOption = None,
    box_format: BoxFormatOption = None,
    pixel_boxes: PixelBoxesOption = None,
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
    from vitdeploy.models.factory import is_factory_reference

    options = ExportOptions(image_size=parse_size(image_size), max_cameras=max_cameras, opset=opset, tasks=tasks,
                            task_classes=_parse_counts(task_classes, option="--task-classes"),
                            fuse_preprocess=fuse_preprocess, source_size=parse_size(source_size, option="--source-size"),
                            source_channel_order=channel_order, backbone=backbone, classes=parse_classes(classes),
                            mean=parse_triple(mean, option="--mean"), std=parse_triple(std, option="--std"))
    factory = is_factory_reference(model)
    if factory and head is None:
        raise VitDeployError(f"{model} is a factory: say which head its outputs follow with --head (detr, mask, cls, "
                             "cait)")
    if not factory and declared_anything(head, score, box_format, pixel_boxes):
        raise VitDeployError(f"--head/--score/--box-format/--pixel-boxes declare a factory's outputs; {model} is a "
                             "zoo model, whose head vitdeploy knows")
    with console.status("exporting") as status:
        progress = lambda msg: status.update(f"{msg} ...")  # noqa: E731
        if factory:
            from vitdeploy.exporter.factory_export import export_factory

            spec = head_spec(head, score=score, box_format=box_format, pixel_boxes=pixel_boxes)
            result = export_factory(model, out=out, head=spec, checkpoint=checkpoint, options=options,
                                    progress=progress)
        else:
            result = export_model(model, out=out, checkpoint=checkpoint, options=options, progress=progress)
    print_export_summary(result.bundle, seconds=result.seconds, files=result.files)
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
