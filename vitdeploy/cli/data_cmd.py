"""`vitdeploy data ...`: labelled data and recordings. `synth` writes synthetic driving scenes as
COCO, `rig3d` as frame sets with 3D boxes in the ego frame, `video` as one mp4 per camera; `info` lists
what an MCAP file or ROS 2 bag holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from vitdeploy.cli.console import console, handles_errors, parse_size
from vitdeploy.extras import require_command

SYNTH_EPILOG = (
    "Example:  vitdeploy data synth --out data/synth --frames 200 --cameras 6 --size 256x448 --seed 0 --stride 5"
)

INFO_EPILOG = "Example:  vitdeploy data info drives/0412.mcap   (a ROS 2 bag folder or .db3 file too; --json)"

data_app = typer.Typer(
    help="Labelled data for training, INT8 calibration and evaluation: synthetic multi-camera driving scenes, "
         "and what recorded drives (MCAP, ROS 2 bags) hold.",
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
    require_command("data synth")
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


@data_app.command("info", epilog=INFO_EPILOG)
@handles_errors
def info(
    recording: Annotated[Path, typer.Argument(help="An .mcap file, a ROS 2 bag folder or a .db3 file.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the listing as JSON.")] = False,
) -> None:
    """List a recording's topics: message types, counts, rates and time span; image topics marked."""
    require_command("data info")
    import json
    from datetime import datetime, timezone

    from rich.table import Table

    from vitdeploy.data.recordings import open_recording

    with open_recording(recording) as rec:
        found = rec.info()
    if json_:
        console.out(json.dumps(found.to_dict(), indent=2), highlight=False)
        return
    start = datetime.fromtimestamp(found.start_ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")
    messages = sum(t.count for t in found.topics)
    n = len(found.topics)
    console.print(f"[bold]{found.path}[/]: {found.format}, {n} topic{'s' * (n != 1)}, {messages} messages, "
                  f"{found.duration_s:.3f} s from {start}", highlight=False, soft_wrap=True)
    table = Table()
    for column, justify in (("topic", "left"), ("type", "left"), ("encoding", "left"), ("messages", "right"),
                            ("rate Hz", "right"), ("span s", "right"), ("image", "center")):
        # long topic and type names wrap rather than lose their ends
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for t in found.topics:
        table.add_row(t.topic, t.message_type or "(no schema)", t.message_encoding, str(t.count), f"{t.rate_hz:.2f}",
                      f"{t.duration_s:.3f}", "yes" if t.image_type is not None else "")
    console.print(table)
    if not found.image_topics:
        from vitdeploy.data.recordings.images import SUPPORTED_TYPES

        console.print(f"no image topics vitdeploy reads ({SUPPORTED_TYPES}, as cdr or protobuf)", highlight=False,
                      soft_wrap=True)


VIDEO_EPILOG = ("Example:  vitdeploy data video --out runs/example/media --frames 100 --cameras 6   "
                "(then a rig camera can read runs/example/media/rear.mp4)")


@data_app.command("video", epilog=VIDEO_EPILOG)
@handles_errors
def video(
    out: Annotated[Path, typer.Option("--out", help="Folder to write CAMERA.mp4 files into.")],
    frames: Annotated[int, typer.Option("--frames", help="Frames per video.")] = 100,
    cameras: Annotated[int, typer.Option("--cameras", help="How many rig cameras (1-6): front, front_left, "
                                         "front_right, rear_left, rear_right, rear.")] = 6,
    size: Annotated[str, typer.Option("--size", help="Frame HEIGHTxWIDTH in pixels.")] = "256x448",
    fps: Annotated[float, typer.Option("--fps", help="Frames per second of the videos.")] = 10.0,
    seed: Annotated[int, typer.Option("--seed", help="The drive; the same seed writes the same videos.")] = 0,
) -> None:
    """Render synthetic driving scenes as one mp4 video per camera (video cameras for a rig file)."""
    from vitdeploy.data.video import write_videos

    with Progress(TextColumn("[bold]rendering[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("video", total=None)
        paths = write_videos(out, frames=frames, cameras=cameras, size=parse_size(size, option="--size"), fps=fps,
                             seed=seed, progress=lambda done, total: bar.update(task, completed=done, total=total))
    for path in paths:
        console.print(f"wrote {path}", highlight=False)


RIG3D_EPILOG = "Example:  vitdeploy data rig3d --out data/rig3d --frames 40 --size 64x96 --seed 7 --stride 13"


@data_app.command("rig3d", epilog=RIG3D_EPILOG)
@handles_errors
def rig3d(
    out: Annotated[Path, typer.Option("--out", help="Folder to write images/ and boxes3d.json into.")],
    frames: Annotated[int, typer.Option("--frames", help="Frame sets to render (one image per camera each).")] = 40,
    cameras: Annotated[int, typer.Option("--cameras", help="How many rig cameras (1-6), in rig order.")] = 6,
    size: Annotated[str, typer.Option("--size", help="Image HEIGHTxWIDTH in pixels.")] = "256x448",
    seed: Annotated[int, typer.Option("--seed", help="The drive; the same seed writes the same dataset.")] = 0,
    stride: Annotated[int, typer.Option("--stride", help="Write every N-th tick (10 fps).")] = 1,
) -> None:
    """Render synthetic frame sets with each camera's geometry and exact 3D boxes in the ego frame
    (a nuScenes-like boxes3d.json): data to calibrate and evaluate a rig-level 3D model on."""
    require_command("data synth")
    from vitdeploy.data.rig_dataset import load_rig_dataset, write_rig_dataset

    hw = parse_size(size, option="--size")
    with Progress(TextColumn("[bold]rendering[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("frame sets"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("rig3d", total=None)
        path = write_rig_dataset(out, frames=frames, cameras=cameras, size=hw, seed=seed, stride=stride,  # type: ignore[arg-type]
                                 progress=lambda done, total: bar.update(task, completed=done, total=total))
    dataset = load_rig_dataset(path)
    boxes = sum(len(s.boxes) for s in dataset.samples)
    console.print(f"wrote {len(dataset.samples)} frame sets ({cameras} cameras, {hw[0]}x{hw[1]}, seed {seed}) with "  # type: ignore[index]
                  f"{boxes} 3D boxes to {path}", highlight=False, soft_wrap=True)
