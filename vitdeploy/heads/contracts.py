"""The output contract of each head kind a user's model may follow, as Markdown, written from the
head types' own ``outputs()`` (the README's "Output contracts" section is this text; a test keeps
them the same). Rows are per declared variant: score activation, box format."""

from __future__ import annotations

from vitdeploy.bundle.head import BoxFormat, BoxLayout, BoxUnits, HeadSpec, ScoreActivation
from vitdeploy.heads.base import Head

#: (what the user passes, the spec it declares) for every variant worth a row, in README order.
DECLARED: tuple[tuple[str, HeadSpec], ...] = (
    ("--head detr", HeadSpec("detr")),
    ("--head detr --score sigmoid --box-format xyxy --pixel-boxes",
     HeadSpec("detr", scores=ScoreActivation.SIGMOID, boxes=BoxFormat(BoxLayout.XYXY, BoxUnits.PIXELS))),
    ("--head mask", HeadSpec("mask")),
    ("--head mask --score sigmoid", HeadSpec("mask", scores=ScoreActivation.SIGMOID)),
    ("--head cls (or cait)", HeadSpec("cls")),
)


def _shape(shape: list[int | str]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def contracts_markdown() -> str:
    """One table row per output of each declared variant: declaration, name, shape, meaning."""
    from vitdeploy.heads import make_head

    lines = ["| declared with | output | shape | meaning |", "|---|---|---|---|"]
    for declared, spec in DECLARED:
        head: Head = make_head(spec, image_size=(1, 1))
        for i, out in enumerate(head.outputs()):
            lines.append(f"| {'`' + declared + '`' if i == 0 else ''} | `{out.name}` | {_shape(out.shape)} | "
                         f"{out.meaning} |")
    return "\n".join(lines) + "\n"
