"""`vitdeploy data ...`: make labelled data. `synth` writes synthetic driving scenes as COCO."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from vitdeploy.cli.console import console, handles_errors, parse_size

SYNTH_EPILOG = (
    "Example:  vitdeploy data synth --out data/synth --frames 200 --cameras 6 --size 256x448 --seed 0 --stride 5"
)

data_app = typer.Typer(
    help="Labelled data for training, INT8 calibration and evaluation: synthetic multi-camera driving scenes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@data_app.command("synth", epilog=SYNTH_EPILOG)
@handles_errors
def synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write images/ and annotations.json into.")],
    frames: Annotated[int, typer.Option("--frames", help="Ticks to render; each gives one image per camera.")] = 100,
    cameras: Annotated[int, typer.Option("--cameras", help="How many rig cameras (1-6): front, front_left, "
                                         "front_right, rear_left, rear_right, rear.")] = 6,
    size: Annotated[str, typer.Option("--size", help="Image HEIGHTxWIDTH in pixels.")] = "256x448",
    seed: Annotated[int, typer.Option("--seed", help="The drive; the same seed writes the same dataset.")] = 0,
    stride: Annotated[int, typer.Option("--stride", help="Write every N-th tick (10 fps); 5-10 gives more "
                                        "varied training data.")] = 1,
) -> None:
    """Render synthetic driving scenes with pixel-exact labels and write them as a COCO dataset."""
    from vitdeploy.data.coco import load_coco, write_coco

    hw = parse_size(size, option="--size")
    with Progress(TextColumn("[bold]rendering[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("images"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("synth", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        path = write_coco(out, frames=frames, cameras=cameras, size=hw, seed=seed,  # type: ignore[arg-type]
                          stride=stride, progress=progress)
    dataset = load_coco(path)
    objects = sum(len(im.labels) for im in dataset.images)
    console.print(
        f"wrote {len(dataset.images)} images ({frames} frames x {cameras} cameras, {hw[0]}x{hw[1]}, seed {seed}) "  # type: ignore[index]
        f"with {objects} objects to {path}", highlight=False, soft_wrap=True)
