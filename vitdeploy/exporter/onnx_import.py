"""`vitdeploy import model.onnx`: an ONNX exported elsewhere -> a bundle (DESIGN.md decision 8).

What vitdeploy cannot know about the graph is declared once and stored in the manifest: head kind,
score activation, box format, class names, normalisation, channel order. The graph must pass
``onnx.checker`` and shape inference and take one float32 NCHW image input; its batch axis becomes
the camera axis (``cameras``): a dynamic one is renamed, a fixed batch of 1 is made dynamic when the
graph runs that way, anything else is refused with how to re-export. Outputs named otherwise than
the head's are renamed in the bundle's copy (``outputs``: head name -> graph name), outputs the head
does not have are dropped from it, and ONNX Runtime runs the result at 1 and at the most cameras
before anything is written. There is no PyTorch reference: the manifest says so where parity goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

import vitdeploy
from vitdeploy.bundle import Bundle, atomic_path, ensure_writable_dir, sha256_file
from vitdeploy.bundle.head import HeadSpec
from vitdeploy.bundle.manifest import (
    CAMERA_AXIS,
    NO_TORCH_REFERENCE,
    Graph,
    Manifest,
    ModelSource,
    Precision,
    Preprocessing,
    SourceKind,
    TensorSpec,
    Variant,
)
from vitdeploy.errors import ExportError
from vitdeploy.exporter.declared_head import declare_head, observed_head
from vitdeploy.exporter.export import MAX_CAMERAS_LIMIT, now_iso
from vitdeploy.exporter.lint import lint_model
from vitdeploy.exporter.onnx_graph import (
    check_graph,
    image_input,
    map_outputs,
    mark_camera_axis,
    prune,
    reexport_hint,
)
from vitdeploy.heads import Head
from vitdeploy.models.recipe import check_classes
from vitdeploy.runtime.backends.onnxruntime import cpu_session

_MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class ImportOptions:
    """What ``import_onnx`` is told about the graph. ``head``: kind, score activation and box format
    (its config is read from the outputs); ``classes``: class names (None: ``class_<i>``);
    ``outputs``: head output name -> graph output name, for graphs named otherwise;
    ``image_size``: (H, W) for a graph whose input size is dynamic; ``mean``/``std`` (0..1 pixel
    units) and ``channel_order`` (RGB or BGR): what the graph expects of its input."""

    head: HeadSpec
    classes: Sequence[str] | None = None
    outputs: Mapping[str, str] | None = None
    max_cameras: int = 8
    image_size: tuple[int, int] | None = None
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"


@dataclass
class ImportResult:
    bundle: Bundle
    seconds: float
    files: dict[str, int]
    notes: list[str] = field(default_factory=list)  # what was changed in the bundle's copy


def _load(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise ExportError(f"{path} does not exist; give the .onnx file to import")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError, a missing external-data file ...
        raise ExportError(f"cannot read {path} as ONNX ({type(exc).__name__}: {str(exc).strip()[:200]})") from exc


def _run(model: onnx.ModelProto, input_name: str, image_size: tuple[int, int], *, cameras: Sequence[int],
         batch_was_fixed: bool, source: Path) -> dict[str, list[int | str]]:
    """Run the graph on random images at each camera count; -> output name -> shape, camera axis named."""
    try:
        session = cpu_session(model)
    except Exception as exc:  # onnxruntime's own exception types
        raise ExportError(f"ONNX Runtime cannot load {source}: {str(exc).strip().splitlines()[0]}") from exc
    rng = np.random.default_rng(0)
    names = [o.name for o in session.get_outputs()]
    shapes: dict[str, list[int | str]] = {}
    for n in cameras:
        feed = {input_name: rng.standard_normal((n, 3, *image_size)).astype(np.float32)}
        try:
            outs = session.run(names, feed)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:300]
            if batch_was_fixed and n > 1:
                raise ExportError(f"{source} has a fixed batch of 1 and does not run with {n} cameras ({first}); "
                                  f"{reexport_hint(input_name, names)}") from exc
            raise ExportError(f"ONNX Runtime cannot run {source} on {n} camera(s): {first}") from exc
        for name, value in zip(names, outs, strict=True):
            if value.dtype != np.float32:
                raise ExportError(f"output {name!r} of {source} is {value.dtype}; vitdeploy reads float32 outputs")
            if value.ndim == 0 or value.shape[0] != n:
                raise ExportError(f"output {name!r} of {source} has shape {list(value.shape)} for {n} camera(s); the "
                                  f"camera (batch) axis must come first; {reexport_hint(input_name, names)}")
            shapes[name] = [CAMERA_AXIS, *value.shape[1:]]
    return shapes


def _checked_options(options: ImportOptions) -> None:
    if not 1 <= options.max_cameras <= MAX_CAMERAS_LIMIT:
        raise ExportError(f"--max-cameras {options.max_cameras} is out of range; use 1..{MAX_CAMERAS_LIMIT}")
    if options.channel_order.upper() not in ("RGB", "BGR"):
        raise ExportError(f"--channel-order {options.channel_order!r} must be RGB or BGR")
    if len(options.mean) != 3 or len(options.std) != 3 or min(options.std) <= 0:
        raise ExportError("--mean and --std take three numbers (R, G, B) in 0..1 pixel units, std above 0")


def import_onnx(path: str | Path, *, out: str | Path, options: ImportOptions,
                progress: Callable[[str], None] | None = None) -> ImportResult:
    """Make a bundle in ``out`` from the ONNX file ``path``, as ``options`` declare it; nothing is
    written unless the graph passes every check."""
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    path = Path(path)
    _checked_options(options)
    classes = check_classes(options.classes) if options.classes is not None else None
    say(f"checking {path}")
    model = check_graph(_load(path), source=path)
    image = image_input(model, image_size=options.image_size, source=path)
    declared = declare_head(options.head, classes=classes, image_size=image.size)
    names = [s.name for s in declared.outputs()]
    notes = map_outputs(model, names, dict(options.outputs or {}), source=path)
    notes += mark_camera_axis(model, image)
    notes += prune(model)
    model = check_graph(model, source=path)
    say("running it in ONNX Runtime")
    cameras = sorted({1, options.max_cameras})
    shapes = _run(model, image.name, image.size, cameras=cameras, batch_was_fixed=image.fixed_batch, source=path)
    head = observed_head(declared, shapes)
    return _write(model, head, shapes, source=path, out=Path(out), options=options, notes=notes, start=start,
                  input_spec=TensorSpec(image.name, "float32", [CAMERA_AXIS, 3, *image.size],
                                        f"normalised camera images, {options.channel_order.upper()}, NCHW"))


def _write(model: onnx.ModelProto, head: Head, shapes: dict[str, list[int | str]], *, source: Path, out: Path,
           options: ImportOptions, notes: list[str], start: float, input_spec: TensorSpec) -> ImportResult:
    out = ensure_writable_dir(out)
    outputs = [TensorSpec(s.name, "float32", shapes[s.name], s.meaning) for s in head.outputs()]
    with atomic_path(out / _MODEL_FILE) as tmp:
        try:
            onnx.save(model, str(tmp))
        except ValueError as exc:  # protobuf refuses a message over 2 GB
            raise ExportError(f"{source} is over 2 GB with its weights; vitdeploy bundles hold one ONNX file") from exc
    graph = Graph(name="model", inputs=[input_spec], outputs=outputs, lint=lint_model(model),
                  variants=[Variant(precision=Precision.FP32, file=_MODEL_FILE,
                                    sha256=sha256_file(out / _MODEL_FILE), created_at=now_iso())])
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    seconds = time.perf_counter() - start
    manifest = Manifest(
        model=source.stem, head=head.spec, parameters=sum(int(np.prod(t.dims)) for t in model.graph.initializer),
        image_size=head.image_size, patch_size=None, max_cameras=options.max_cameras, opset=opset,
        preprocessing=Preprocessing(image_size=head.image_size, channel_order=options.channel_order.upper(),
                                    mean=tuple(options.mean), std=tuple(options.std), resize="stretch"),
        graphs=[graph], class_names=list(head.class_names), created_at=now_iso(),
        vitdeploy_version=vitdeploy.__version__, export_seconds=round(seconds, 2),
        source=ModelSource(kind=SourceKind.ONNX, reference=str(source), sha256=sha256_file(source),
                           parity=NO_TORCH_REFERENCE))
    bundle = Bundle(out, manifest)
    bundle.save()
    return ImportResult(bundle=bundle, seconds=seconds, files={_MODEL_FILE: (out / _MODEL_FILE).stat().st_size},
                        notes=notes)
