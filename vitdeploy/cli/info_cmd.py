"""`vitdeploy info`: the manifest of a bundle, for people."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from vitdeploy.cli.console import console, handles_errors
from vitdeploy.cli.report import file_problem, print_graphs
from vitdeploy.errors import VitDeployError

EPILOG = "Example:  vitdeploy info bundles/tiny-detr   (add --json for the raw manifest)"


def _origin(m) -> str:
    """Where the bundle came from, in one line."""
    from vitdeploy.bundle import SourceKind

    src = m.source
    if src.kind is SourceKind.ONNX:
        return f"imported {m.created_at} by vitdeploy {m.vitdeploy_version} from {src.reference} (sha256 {src.sha256[:12]})"
    weights = f", weights {m.checkpoint}" if m.checkpoint else (", built-in weights" if src.kind is SourceKind.FACTORY
                                                                 else ", random weights")
    made = f"factory {src.reference}" if src.kind is SourceKind.FACTORY else "the zoo"
    backbone = f", backbone {src.backbone.source} ({src.backbone.layout})" if src.backbone else ""
    return (f"exported {m.created_at} from {made} by vitdeploy {m.vitdeploy_version}, torch {m.torch_version}"
            f"{backbone}{weights}")


@handles_errors
def info(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the raw manifest JSON.")] = False,
) -> None:
    """Show what a bundle holds: model, graphs, precisions, parity, lint, calibration and engines,
    and check every file against the sha256 the manifest recorded (exit 1 when one changed or is
    missing)."""
    from vitdeploy.bundle import Bundle, FileState, verify_files
    from vitdeploy.heads import head_for

    b = Bundle.open(bundle)
    m = b.manifest
    if json_:
        console.out(m.to_json(), end="", highlight=False)
        return
    h, w = m.image_size
    console.print(f"[bold]{m.model}[/]  head {escape(head_for(m).describe())}, {m.parameters / 1e6:.2f}M parameters, "
                  f"input {h}x{w}, "
                  f"cameras 1..{m.max_cameras}, opset {m.opset}")
    p = m.preprocessing
    console.print(f"preprocessing: {p.resize} to {h}x{w}, {p.channel_order}, mean {p.mean}, std {p.std}"
                  + (f", fused (raw {p.source_size[0]}x{p.source_size[1]} uint8 in)" if p.fused and p.source_size else ""))
    if m.class_names and len(m.class_names) <= 20:
        console.print(f"classes: {', '.join(m.class_names)}")
    console.print(escape(_origin(m)), highlight=False)
    checks = verify_files(b)
    print_graphs(b, checks=checks)
    for e in m.engines:
        console.print(f"engine {e.file}: {e.precision.value}, TensorRT {e.tensorrt_version}, {e.gpu_name} "
                      f"(sm {e.compute_capability}), {e.status.value}" + file_problem(checks.get(e.file)))
    bad = {name: state for name, state in checks.items() if state is not FileState.OK}
    if bad:
        raise VitDeployError("files differ from the manifest: " + ", ".join(f"{n} ({s.value})" for n, s in bad.items())
                             + "; re-run the command that made them (export, calibrate or build)")
