"""`vitdeploy doctor`: what this machine offers vitdeploy, and which commands work here."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from vitdeploy.cli.console import console, err_console, handles_errors

EPILOG = ("Examples:\n\n  vitdeploy doctor\n\n  sudo vitdeploy doctor --json > machine.json   (root lets jetson_clocks "
          "--show read the CPU and memory clocks on a Jetson)")


@handles_errors
def doctor(
    json_: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Show Python and library versions, onnxruntime's providers, TensorRT and the CUDA layer, the GPU, a
    Jetson's release, power mode and clocks, OpenCV's video backends, and which commands work here."""
    from vitdeploy.doctor import gather

    facts = gather()
    if json_:
        console.out(json.dumps(facts.to_dict(), indent=2), highlight=False)
        return
    _print(facts)
    for warning in facts.warnings():
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True, highlight=False)


def _print(facts) -> None:
    say = lambda text: console.print(text, soft_wrap=True, highlight=False)  # noqa: E731 - one style for every line
    say(f"[bold]vitdeploy {facts.vitdeploy}[/] on Python {facts.python} ({escape(facts.executable)}), "
        f"{escape(facts.platform)}")
    say("libraries: " + ", ".join(f"{k} {v}" for k, v in facts.libraries.items() if k != "vitdeploy"))
    ort = facts.onnxruntime
    say(f"onnxruntime {ort.version}: {', '.join(ort.providers)}" if ort.version else "onnxruntime: not installed")
    t = facts.tensorrt
    say(f"TensorRT: {t.tensorrt or 'no'}" + (f" ({escape(t.tensorrt_note)})" if t.tensorrt_note else ""))
    runtime = f", CUDA runtime {t.cuda_runtime}" if t.cuda_runtime else ""
    version = f" {t.cuda_layer_version}" if t.cuda_layer_version else ""
    layer = t.cuda_layer.split("; pip install")[0] + (")" if "; pip install" in t.cuda_layer else "")  # build's row says how
    say(f"CUDA layer: {escape(layer)}{version}{runtime}")
    for g in facts.gpus:
        extra = [f"sm {g.compute_capability}" if g.compute_capability else "compute capability unknown"]
        extra += [f"{g.sm_count} SMs"] if g.sm_count else []
        extra += [f"{g.memory_mib / 1024:.1f} GiB"] if g.memory_mib else []
        extra += [f"driver {g.driver}"] if g.driver else []
        say(f"GPU: {escape(g.name)} ({', '.join(extra)}; from {g.source})")
    if not facts.gpus:
        say(f"GPU: none seen ({escape(facts.gpu_note or 'no CUDA layer opened one')})")
    j = facts.jetson
    if j is None:
        say("Jetson: no (no /etc/nv_tegra_release)")
    else:
        locked = {True: "[green]locked[/]", False: "[red]not locked[/]", None: "[yellow]unknown[/]"}[j.clocks.locked]
        say(f"Jetson: {escape(j.model or '?')}, L4T {j.l4t or '?'}, JetPack {j.jetpack or '?'}, power mode "
            f"{j.power_mode or '?'}; clocks {locked}: {escape(j.clocks.detail)}")
    cv = facts.opencv
    if cv.version is None:
        say(f"OpenCV: [red]none[/] ({escape(cv.note or '')})")
    else:
        backends = ", ".join(f"{k} {v}" for k, v in cv.video_io.items())
        say(f"OpenCV {cv.version} ({escape(cv.source or '?')}, {escape(cv.path or '?')}): GStreamer "
            f"{'[green]yes[/]' if cv.gstreamer else 'no'}; video I/O: {escape(backends)}")
    table = Table(title="commands", title_justify="left")
    for col in ("command", "here", "needs"):
        table.add_column(col)
    for command, lacks in facts.commands.items():
        needs = escape(f'pip install "vitdeploy[{",".join(e.value for e in lacks)}]"') if lacks else ""
        table.add_row(command, "[red]missing extra[/]" if lacks else "[green]works[/]", needs)
    console.print(table)
