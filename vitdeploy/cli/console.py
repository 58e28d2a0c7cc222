"""What every command shares: the consoles, the error boundary, and option parsers.

Only the CLI turns a ``VitDeployError`` into an exit code (DESIGN.md): ``@handles_errors`` prints
the one-line message without a traceback and exits 1; Ctrl-C exits 130. An import of a library an
extra brings that fails where no up-front check foresaw it says which extra to install, the same way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from vitdeploy.errors import VitDeployError
from vitdeploy.extras import error_for_missing_module

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def handles_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return fn(*args, **kwargs)
            except ModuleNotFoundError as exc:
                missing = error_for_missing_module(exc, needed_by="this command")
                if missing is None:
                    raise
                raise missing from exc
        except VitDeployError as exc:
            # escape: messages quote things like pip install "vitdeploy[tensorrt]" that are not markup
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


_SIZE = re.compile(r"^\s*(\d+)\s*[xX×,]\s*(\d+)\s*$")


def parse_size(value: str | None, *, option: str = "--image-size") -> tuple[int, int] | None:
    """'448x800' -> (448, 800): height first, as in the rest of vitdeploy."""
    if value is None:
        return None
    m = _SIZE.match(value)
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise VitDeployError(f"{option} {value!r} is not HEIGHTxWIDTH in pixels, e.g. 448x800")
    return int(m.group(1)), int(m.group(2))


def warn_random_weights(manifest) -> None:
    """Warn (stderr) when the torch backend will run a bundle exported with random weights."""
    from vitdeploy.models.exported import random_weights_warning

    message = random_weights_warning(manifest)
    if message:
        err_console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def parse_list(value: str | None) -> list[str]:
    """'fp32,fp16' -> ['fp32', 'fp16']."""
    if not value:
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def unmet_requests(rows: list[tuple[Any, bool]], *, backends: list[str], precisions: list[Any]) -> list[str]:
    """What the user named (``--backend``, ``--precision``) that ran nowhere: ``rows`` are
    (configuration with ``backend`` and ``precision``, whether it ran). Empty: the command did what
    was asked, and may exit 0."""
    ran = [config for config, ok in rows if ok]
    missing = [f"backend {b}" for b in dict.fromkeys(backends) if not any(c.backend == b for c in ran)]
    missing += [f"precision {p.value}" for p in dict.fromkeys(precisions)
                if not any(c.precision == p and (not backends or c.backend in backends) for c in ran)]
    return missing
