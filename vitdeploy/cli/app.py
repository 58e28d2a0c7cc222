"""The Typer application: registers one module per command."""

from __future__ import annotations

import typer

from vitdeploy.cli import export_cmd, info_cmd, models_cmd

app = typer.Typer(
    name="vitdeploy",
    help="Ship Vision Transformer perception models to TensorRT: export, FP16/INT8, engines, multi-camera runtime.",
    epilog="Example:  vitdeploy export vit-tiny-detr --out bundles/vit-tiny-detr",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)



@app.callback()
def _root() -> None:
    """Ship Vision Transformer perception models to TensorRT."""


app.command("models", epilog=models_cmd.EPILOG)(models_cmd.models)
app.command("export", epilog=export_cmd.EPILOG)(export_cmd.export)
app.command("info", epilog=info_cmd.EPILOG)(info_cmd.info)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
