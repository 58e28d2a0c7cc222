"""Options that declare what vitdeploy cannot read from a model it did not make (a user's factory in
`vitdeploy export`, an ONNX in `vitdeploy import`): its head and its input normalisation."""

from __future__ import annotations

from typing import Annotated

import typer

from vitdeploy.bundle.head import BoxFormat, BoxLayout, BoxUnits, HeadSpec, ScoreActivation
from vitdeploy.cli.console import parse_list
from vitdeploy.errors import VitDeployError

HeadOption = Annotated[str | None, typer.Option(
    "--head", help="Head kind the model's outputs follow: detr, mask, cls, cait (README: \"Bring your own model\").")]
ScoreOption = Annotated[str | None, typer.Option(
    "--score", help="Class scores: softmax (last class 'no object', DETR) or sigmoid (one per class: Deformable "
                    "DETR, RT-DETR, DINO). Default softmax.")]
BoxFormatOption = Annotated[str | None, typer.Option("--box-format", help="Boxes as cxcywh (default) or xyxy.")]
PixelBoxesOption = Annotated[bool | None, typer.Option(
    "--pixel-boxes/--normalized-boxes", help="Boxes in model-input pixels, or in 0..1 of the input (default).")]
ClassesOption = Annotated[str | None, typer.Option(
    "--classes", help="Class names the head predicts, comma-separated, e.g. car,truck,bus,pedestrian,cyclist.")]
MeanOption = Annotated[str | None, typer.Option(
    "--mean", help="Input normalisation mean, R,G,B in 0..1 pixel units, e.g. 0.485,0.456,0.406.")]
StdOption = Annotated[str | None, typer.Option(
    "--std", help="Input normalisation std, R,G,B in 0..1 pixel units, e.g. 0.229,0.224,0.225.")]


def _enum(enum_type, value: str, option: str):
    try:
        return enum_type(value.lower())
    except ValueError:
        raise VitDeployError(f"{option} {value!r}: choose {' or '.join(e.value for e in enum_type)}") from None


def head_spec(kind: str, *, score: str | None, box_format: str | None, pixel_boxes: bool | None) -> HeadSpec:
    """--head/--score/--box-format/--pixel-boxes -> the declared ``HeadSpec`` (config left to the outputs)."""
    boxes = None
    if box_format is not None or pixel_boxes is not None:
        layout = _enum(BoxLayout, box_format, "--box-format") if box_format else BoxLayout.CXCYWH
        boxes = BoxFormat(layout, BoxUnits.PIXELS if pixel_boxes else BoxUnits.NORMALIZED)
    scores = _enum(ScoreActivation, score, "--score") if score else None
    return HeadSpec(kind, scores=scores, boxes=boxes)


def declared_anything(*options: object) -> bool:
    return any(option is not None for option in options)


def parse_classes(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = parse_list(value)
    if not names:
        raise VitDeployError(f"--classes {value!r}: give comma-separated class names, e.g. car,truck,bus")
    return names


def parse_triple(value: str | None, *, option: str) -> tuple[float, float, float] | None:
    """'0.485,0.456,0.406' -> (0.485, 0.456, 0.406)."""
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in parse_list(value))
    except ValueError:
        numbers = ()
    if len(numbers) != 3:
        raise VitDeployError(f"{option} {value!r}: give three numbers R,G,B in 0..1 pixel units, e.g. 0.5,0.5,0.5")
    return numbers  # type: ignore[return-value]


def parse_mapping(value: str | None, *, option: str = "--outputs") -> dict[str, str] | None:
    """'logits=pred_logits,boxes=pred_boxes' -> {'logits': 'pred_logits', 'boxes': 'pred_boxes'}."""
    if value is None:
        return None
    pairs = [item.partition("=") for item in parse_list(value)]
    if not pairs or any(not k.strip() or not sep or not v.strip() for k, sep, v in pairs):
        raise VitDeployError(f"{option} {value!r}: give HEAD_OUTPUT=GRAPH_OUTPUT pairs, e.g. "
                             "logits=pred_logits,boxes=pred_boxes")
    return {k.strip(): v.strip() for k, _, v in pairs}
