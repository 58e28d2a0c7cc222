"""The Typer application: registers one module per command."""

from __future__ import annotations

import typer

from vitdeploy.cli import (
    bench_cmd,
    build_cmd,
    calibrate_cmd,
    data_cmd,
    demo_cmd,
    doctor_cmd,
    eval_cmd,
    export_cmd,
    import_cmd,
    info_cmd,
    models_cmd,
    record_cmd,
    replay_cmd,
    run_cmd,
)

app = typer.Typer(
    name="vitdeploy",
    help="Ship Vision Transformer perception models to TensorRT: export, FP16/INT8, engines, multi-camera runtime.",
    epilog="Example:  vitdeploy demo   (export, FP16/INT8, a 6-camera rig and accuracy on this CPU)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root() -> None:
    """Ship Vision Transformer perception models to TensorRT."""


app.command("models", epilog=models_cmd.EPILOG)(models_cmd.models)
app.add_typer(data_cmd.data_app, name="data")
app.command("export", epilog=export_cmd.EPILOG)(export_cmd.export)
app.command("import", epilog=import_cmd.EPILOG)(import_cmd.import_onnx)
app.command("info", epilog=info_cmd.EPILOG)(info_cmd.info)
app.command("calibrate", epilog=calibrate_cmd.EPILOG)(calibrate_cmd.calibrate)
app.command("build", epilog=build_cmd.EPILOG)(build_cmd.build)
app.command("run", epilog=run_cmd.EPILOG)(run_cmd.run)
app.command("record", epilog=record_cmd.EPILOG)(record_cmd.record)
app.command("bench", epilog=bench_cmd.EPILOG)(bench_cmd.bench)
app.command("eval", epilog=eval_cmd.EPILOG)(eval_cmd.evaluate)
app.command("replay", epilog=replay_cmd.EPILOG)(replay_cmd.replay)
app.command("demo", epilog=demo_cmd.EPILOG)(demo_cmd.demo)
app.command("doctor", epilog=doctor_cmd.EPILOG)(doctor_cmd.doctor)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
