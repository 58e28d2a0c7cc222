"""`vitdeploy models`: list the zoo."""

from __future__ import annotations

from rich.table import Table

from vitdeploy.cli.console import console, handles_errors
from vitdeploy.extras import require_command

EPILOG = "Example:  vitdeploy models"


def _human(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


@handles_errors
def models() -> None:
    """List the model zoo: names, parameters, default input size and head."""
    require_command("models")
    from vitdeploy.models.zoo import ZOO

    table = Table(title="vitdeploy model zoo", show_lines=False)
    for col in ("model", "head", "params", "input HxW", "description"):
        table.add_column(col, justify="right" if col == "params" else "left")
    for card in ZOO.values():
        h, w = card.image_size
        table.add_row(card.name, card.head.kind, _human(card.parameter_count()), f"{h}x{w}", card.description)
    console.print(table)
