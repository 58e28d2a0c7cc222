"""`vitdeploy eval`: task accuracy on labelled data, every precision beside FP32 ONNX and PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vitdeploy.cli.console import console, handles_errors, parse_list, unmet_requests
from vitdeploy.errors import VitDeployError
from vitdeploy.extras import require_command

EPILOG = (
    "Examples:\n\n"
    "  vitdeploy eval bundles/demo-detr --data synthetic:seed=7,frames=120\n\n"
    "  vitdeploy eval bundles/tiny-detr --data data/val/annotations.json --precision fp32,fp16,int8 --json eval.json\n\n"
    "  vitdeploy eval bundles/tiny-cls --data data/val_folders --frames 500\n\n"
    "  vitdeploy eval bundles/tiny-detr --data data/val --predictions preds/   (COCO results JSON per configuration)\n\n"
    "Data: a COCO file (or a folder with annotations.json) for detr/mask heads, 'synthetic[:seed=S,frames=N,"
    "cameras=C,size=HxW,stride=K]' (held-out seed 7 by default), or a folder with one sub-folder of images per "
    "class for cls/cait heads. The FP32 ONNX and the PyTorch reference are always evaluated.\n\n"
    "Exit code 1 when the FP32 ONNX, or a backend or precision asked for (default: every precision the bundle "
    "has), could not be scored."
)


@handles_errors
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (from `vitdeploy export`).")],
    data: Annotated[str, typer.Option("--data", help="COCO file/folder, class-folder tree, or synthetic[:k=v,...].")],
    backend: Annotated[str | None, typer.Option(
        help="Comma-separated: onnxruntime,torch,tensorrt; default onnxruntime (+ the torch reference).")] = None,
    precision: Annotated[str | None, typer.Option(
        help="Comma-separated: fp32,fp16,int8; default: every precision the bundle has.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda for every backend; default: each backend's own.")] = None,
    frames: Annotated[int | None, typer.Option(help="Evaluate at most this many images.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown table here.")] = None,
    predictions: Annotated[Path | None, typer.Option(
        help="Write each configuration's detections here as a COCO results JSON (BACKEND.PRECISION.json).")] = None,
    allow_rejected: Annotated[bool, typer.Option("--allow-rejected", help="Also score graphs that `calibrate "
                                                 "--min-agreement` rejected (recorded in the report).")] = False,
) -> None:
    """Score a bundle on labelled images: detection mAP@[.5:.95] and mAP@.5 (COCO, faster-coco-eval),
    segmentation mIoU (mask heads), classification top-1 — for every backend and precision, side by
    side with the FP32 ONNX graph and the PyTorch reference."""
    require_command("eval")
    from vitdeploy.bundle import Bundle, Precision, atomic_write_text
    from vitdeploy.evaluation.datasets import open_dataset
    from vitdeploy.evaluation.evaluate import check_compatible, eval_plan, evaluate_bundle
    from vitdeploy.heads import head_for

    b = Bundle.open(bundle)
    dataset = open_dataset(data, image_size=tuple(b.manifest.image_size), frames=frames,
                           task=head_for(b.manifest).eval_task)
    check_compatible(b.manifest, dataset)
    precisions = [Precision.parse(p) for p in parse_list(precision)] or None
    backends = parse_list(backend) or ["onnxruntime"]
    configs = eval_plan(b, backends=backends, precisions=precisions, device=device, allow_rejected=allow_rejected)

    unit = "frame sets" if dataset.task == "detection3d" else "images"
    console.print(f"[bold]{b.manifest.model}[/] on {escape(dataset.name)}: {len(dataset)} {unit}, "
                  f"{len(configs)} configurations")
    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("images", total=len(dataset))
        report = evaluate_bundle(b, dataset, configs=configs, allow_rejected=allow_rejected,
                                 progress=lambda done, total: bar.update(task, completed=done, total=total))
    _print_report(report)
    if json_path is not None:
        console.print(f"wrote {report.write_json(json_path)}")
    if markdown is not None:
        atomic_write_text(markdown, report.to_markdown())
        console.print(f"wrote {markdown}")
    if predictions is not None:
        from vitdeploy.evaluation.predictions import write_predictions

        written = write_predictions(report, predictions)
        console.print(f"wrote {', '.join(str(p) for p in written)}" if written else
                      "no predictions file: only detection heads have COCO results", soft_wrap=True)
    if not any(r.scores for r in report.results):
        raise VitDeployError("nothing could be evaluated: every configuration was skipped (reasons above)")
    if report.reference("onnxruntime") is None:
        raise VitDeployError("the FP32 ONNX graph, the reference every score is compared with, could not be scored "
                             "(reason above)")
    # Every precision asked for (default: every one planned) must be scored by a backend asked for.
    requested = precisions or list(dict.fromkeys(c.precision for c in configs if c.backend in backends))
    unmet = unmet_requests([(r.config, r.scores is not None) for r in report.results], backends=backends,
                           precisions=requested)
    if unmet:
        raise VitDeployError(f"asked for but could not score: {', '.join(unmet)} (reasons above)")


#: Short column names of the terminal table (the Markdown/JSON spell them out).
_SHORT = {"map": "mAP", "map50": "mAP50", "map75": "mAP75", "miou": "mIoU", "top1": "top-1", "map3d": "mAP3D",
          "mate": "mATE", "mase": "mASE", "maoe": "mAOE"}
_NOTES = {
    "map": "mAP: COCO box AP over IoU 0.50:0.95 (faster-coco-eval); mAP50/mAP75 at IoU 0.50/0.75",
    "top1": "top-1: fraction of images whose most likely class is the label",
    "map3d": "mAP3D: nuScenes mAP over centre distances 0.5/1/2/4 m (ego frame, one answer per frame set); "
             "mATE (m), mASE (1 - IoU), mAOE (rad): errors of the matches at 2 m, lower is better",
}


def _print_report(report) -> None:
    from vitdeploy.evaluation.evaluate import METRIC_LABELS, format_delta, format_score
    from vitdeploy.runtime.machine import machine_line

    names = report.metrics
    onnx, torch_ref = report.reference("onnxruntime"), report.reference("torch")
    first = names[0]
    unit = "frame sets" if first == "map3d" else "images"
    table = Table(title=f"{report.bundle['model']}: {report.dataset['images']} {unit}; "
                        f"Δ: {METRIC_LABELS[first]} minus the FP32 ONNX's / PyTorch reference's", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1))
    for col in ["configuration"] + [_SHORT[n] for n in names]:
        table.add_column(col, justify="left" if col == "configuration" else "right", no_wrap=True)
    if onnx:
        table.add_column("Δ onnx", justify="right", no_wrap=True)
    if torch_ref:
        table.add_column("Δ torch", justify="right", no_wrap=True)
    table.add_column("infer s", justify="right", no_wrap=True)
    for r in report.results:
        if r.scores is None:
            continue
        label = f"{r.config.backend} {r.config.precision.value}" + (" (ref)" if r.role == "PyTorch reference" else "")
        row = [label] + [format_score(getattr(r.scores, n), 3) for n in names]
        for ref in (onnx, torch_ref):
            if ref:
                row.append(format_delta(getattr(r.scores, first), getattr(ref.scores, first), 3))
        row.append(f"{r.seconds:.2f}")
        table.add_row(*row)
    console.print(table)
    console.print(_NOTES[first] + ("; mIoU: semantic mean IoU of the mask instances" if "miou" in names else ""),
                  soft_wrap=True)
    for r in report.results:
        if r.scores is None:
            console.print(f"[yellow]skipped[/] {r.config.backend} {r.config.precision.value}: {escape(r.reason or '')}",
                          soft_wrap=True)
    console.print(f"data: {escape(report.dataset['name'])}", soft_wrap=True)
    console.print(f"machine: {escape(machine_line(report.machine))}", soft_wrap=True)
