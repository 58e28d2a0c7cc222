"""`vitdeploy import`: an ONNX exported elsewhere to a bundle, its head and input declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from vitdeploy.cli.console import console, err_console, handles_errors, parse_size
from vitdeploy.cli.head_options import (
    BoxFormatOption,
    ClassesOption,
    MeanOption,
    PixelBoxesOption,
    ScoreOption,
    StdOption,
    head_spec,
    parse_classes,
    parse_mapping,
    parse_triple,
)
from vitdeploy.cli.report import print_export_summary

EPILOG = (
    "Examples:\n\n"
    "  vitdeploy import detr.onnx --out bundles/detr --head detr --classes car,truck,bus\n\n"
    "  vitdeploy import rtdetr.onnx --out bundles/rtdetr --head detr --score sigmoid --classes car,truck,bus "
    "--outputs logits=logits,boxes=pred_boxes\n\n"
    "  vitdeploy import yolo-like.onnx --out bundles/y --head detr --score sigmoid --box-format xyxy --pixel-boxes "
    "--mean 0,0,0 --std 1,1,1 --channel-order BGR"
)


@handles_errors
def import_onnx(
    model: Annotated[Path, typer.Argument(help="The .onnx file to import (one float32 NCHW image input).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write.")],
    head: Annotated[str, typer.Option("--head", help="Head kind the graph's outputs follow: detr, mask, cls, cait "
                                                     "(README: \"Bring your own model\").")],
    classes: ClassesOption = None,
    score: ScoreOption = None,
    box_format: BoxFormatOption = None,
    pixel_boxes: PixelBoxesOption = None,
    outputs: Annotated[str | None, typer.Option(help="Head output = graph output, for graphs named otherwise, e.g. "
                                                     "logits=pred_logits,boxes=pred_boxes.")] = None,
    mean: MeanOption = None,
    std: StdOption = None,
    channel_order: Annotated[str, typer.Option(help="Channel order the graph expects: RGB or BGR.")] = "RGB",
    image_size: Annotated[str | None, typer.Option(help="HxW, for a graph whose input size is dynamic.")] = None,
    max_cameras: Annotated[int, typer.Option(help="Largest camera count (batch) the bundle takes.")] = 8,
) -> None:
    """Import an ONNX model exported elsewhere: checked, its batch axis made the camera axis, run in ONNX Runtime."""
    from vitdeploy.exporter.onnx_import import ImportOptions
    from vitdeploy.exporter.onnx_import import import_onnx as import_graph

    options = ImportOptions(head=head_spec(head, score=score, box_format=box_format, pixel_boxes=pixel_boxes),
                            classes=parse_classes(classes), outputs=parse_mapping(outputs), max_cameras=max_cameras,
                            image_size=parse_size(image_size), channel_order=channel_order)
    normalisation = {k: v for k, v in (("mean", parse_triple(mean, option="--mean")),
                                       ("std", parse_triple(std, option="--std"))) if v is not None}
    if normalisation:
        from dataclasses import replace

        options = replace(options, **normalisation)
    with console.status("importing") as status:
        result = import_graph(model, out=out, options=options, progress=lambda msg: status.update(f"{msg} ..."))
    print_export_summary(result.bundle, seconds=result.seconds, files=result.files, verb="imported")
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
