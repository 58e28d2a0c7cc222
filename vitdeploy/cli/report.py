"""Rich renderings of a bundle, shared by `export` and `info`."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from vitdeploy.bundle import Bundle, FileState
from vitdeploy.cli.console import console


def _shape(shape: list) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def file_problem(state: FileState | None) -> str:
    """' [red]CHANGED ...[/]' for a file that is not what the manifest recorded; '' when it is."""
    if state is FileState.CHANGED:
        return " [bold red]CHANGED: its sha256 is not the one recorded (truncated or overwritten)[/]"
    if state is FileState.MISSING:
        return " [bold red]MISSING[/]"
    return ""


def print_export_summary(bundle: Bundle, *, seconds: float, files: dict[str, int], verb: str = "exported") -> None:
    m = bundle.manifest
    console.print(f"[bold]{escape(m.model)}[/] ({m.head.kind}, {m.parameters / 1e6:.2f}M parameters) -> {bundle.path}")
    print_graphs(bundle, files=files)
    console.print(f"opset {m.opset}, cameras 1..{m.max_cameras}, {verb} in {seconds:.1f} s")


def print_graphs(bundle: Bundle, *, files: dict[str, int] | None = None,
                 checks: dict[str, FileState] | None = None) -> None:
    """The graphs, their variants (with ``checks``: whether each file still has its recorded
    sha256), parity and lint."""
    m = bundle.manifest
    for g in m.graphs:
        table = Table(title=f"graph {g.name}", title_justify="left", show_header=True)
        for col in ("", "name", "dtype", "shape", "meaning"):
            table.add_column(col)
        for kind, specs in (("in", g.inputs), ("out", g.outputs)):
            for s in specs:
                table.add_row(kind, s.name, s.dtype, _shape(s.shape), s.meaning)
        console.print(table)
        for v in g.variants:
            size = files.get(v.file) if files else None
            if size is None and (bundle.path / v.file).is_file():
                size = (bundle.path / v.file).stat().st_size
            extra = f", {_mb(size)}" if size is not None else ""
            console.print(f"  {v.precision.value}: {v.file}{extra}, {escape(f'[{v.status.value}]')}"
                          + (file_problem(checks.get(v.file)) if checks else ""))
        if g.parity is None and m.source.parity != "pytorch":
            console.print(f"  parity: {escape(m.source.parity)}")
        if g.parity is not None:
            worst = g.parity.worst()
            verdict = "[green]pass[/]" if g.parity.passed else "[red]FAIL[/]"
            errs = ", ".join(f"{k} {e.max_abs:.1e}" for k, e in worst.items())
            console.print(f"  parity vs PyTorch: {verdict} (max abs: {errs}; atol {g.parity.atol:g}, "
                          f"rtol {g.parity.rtol:g}; cases: {', '.join(g.parity.cases)})")
        if g.lint:
            for f in g.lint:
                color = "red" if f.severity == "error" else "yellow"
                console.print(f"  lint [{color}]{f.severity}[/] {f.rule}: {escape(f.message)}\n      hint: {escape(f.hint)}",
                              highlight=False)
        else:
            console.print("  lint: [green]clean[/] (no patterns TensorRT rejects or builds slowly)")
