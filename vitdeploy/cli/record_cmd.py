"""`vitdeploy record`: a rig's cameras into an MCAP file (one topic per camera, capture stamps)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vitdeploy.cli.console import console, handles_errors
from vitdeploy.errors import VitDeployError
from vitdeploy.extras import require_command

EPILOG = (
    "Examples:\n\n"
    "  vitdeploy record --rig rig.toml --out drives/today.mcap --duration 60\n\n"
    "  vitdeploy record --rig rig.toml --out drives/lossless.mcap --max-frames 200 --lossless\n\n"
    "Ctrl-C stops cleanly and leaves a complete file. Then: `vitdeploy data info FILE`, "
    "`vitdeploy calibrate BUNDLE --data FILE`, `vitdeploy run BUNDLE --camera FILE`."
)


@handles_errors
def record(
    rig: Annotated[Path, typer.Option("--rig", help="Rig TOML file whose cameras are recorded.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The MCAP file to write.")],
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames of every camera.")] = None,
    lossless: Annotated[bool, typer.Option("--lossless", help="Raw RGB frames (foxglove.RawImage) instead of "
                                           "JPEG: exact pixels, larger file.")] = False,
    image_format: Annotated[str | None, typer.Option("--format", help="jpeg | png | raw; default jpeg "
                                                     "(raw with --lossless).")] = None,
    jpeg_quality: Annotated[int, typer.Option(help="JPEG quality 1-100.")] = 90,
) -> None:
    """Record every camera of a rig into one MCAP file Foxglove opens: a topic per camera
    (/CAMERA/image), each frame stamped with its capture time."""
    require_command("record")
    from vitdeploy.data.recordings import ImageFormat
    from vitdeploy.runtime.record import RecordOptions, record_rig
    from vitdeploy.runtime.rig import load_rig

    formats = [f.value for f in ImageFormat]
    if image_format is not None and image_format not in formats:
        raise VitDeployError(f"--format {image_format!r}: choose one of {', '.join(formats)}")
    if lossless and image_format == "jpeg":
        raise VitDeployError("--lossless and --format jpeg contradict each other; JPEG is lossy")
    fmt = ImageFormat(image_format or ("raw" if lossless else "jpeg"))
    the_rig = load_rig(rig)
    console.print(f"recording {len(the_rig.cameras)} cameras to {out} ({fmt.value}); Ctrl-C stops")
    summary = record_rig(the_rig, out=out, options=RecordOptions(image_format=fmt, jpeg_quality=jpeg_quality,
                                                                 duration=duration, max_frames=max_frames))
    table = Table(title="cameras: frames written, and frames delivered but not written", title_justify="left")
    for col in ("camera", "topic", "frames", "not written", "corrupt", "health"):
        table.add_column(col, no_wrap=True)
    table.add_column("last error", overflow="fold")
    for status in summary.cameras:
        table.add_row(status.camera, summary.topics[status.camera], str(summary.frames[status.camera]),
                      str(summary.skipped[status.camera]), str(status.corrupt), status.health.value,
                      escape(status.last_error or ""))
    console.print(table)
    console.print(f"wrote {out}: {summary.size_bytes / 1e6:.1f} MB, {sum(summary.frames.values())} frames in "
                  f"{summary.duration_s:.1f} s; stopped by {summary.stopped_by}", soft_wrap=True)
    if not any(summary.frames.values()):
        raise VitDeployError(f"no frame was recorded; {out} holds no images")
