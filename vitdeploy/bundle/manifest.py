"""The bundle manifest: the single source of truth a later stage reads (DESIGN.md, "The flow").

Typed dataclasses, written as JSON. Everything a later command needs (input names and shapes,
preprocessing, class names, parity and calibration results, engine provenance) lives here, so no
command asks the user again for something the manifest knows.

Why this is long: every record of the manifest and the one reader that checks each field's type
against them (``_from_jsonable``) stay together, so a new field cannot be added without being checked.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from vitdeploy.bundle.head import BoxFormat, BoxLayout, BoxUnits, HeadSpec
from vitdeploy.errors import BundleError

#: 2: ``head`` is a ``HeadSpec`` (kind, score activation, box format, config) instead of a string
#: beside ``head_config``. Schema-1 manifests are migrated when read (``_migrate_1``).
SCHEMA_VERSION = 2

#: The symbolic name of the batch axis: one image per camera of the rig.
CAMERA_AXIS = "cameras"


class Precision(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"

    @classmethod
    def parse(cls, value: str | Precision) -> Precision:
        if isinstance(value, Precision):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise BundleError(f"unknown precision {value!r}; choose one of: {names}") from None


class Status(str, enum.Enum):
    GOOD = "good"
    REJECTED = "rejected"  # measured and below the user's agreement threshold; file kept for inspection
    FAILED = "failed"  # a check failed (parity, golden agreement)


@dataclass
class TensorSpec:
    """One graph input or output. ``shape`` holds ints for fixed axes and names for dynamic ones."""

    name: str
    dtype: str  # numpy dtype name: "float32", "uint8", ...
    shape: list[int | str]
    meaning: str = ""

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete_shape(self, **dims: int) -> tuple[int, ...]:
        """The shape with the dynamic axes filled from ``dims`` (e.g. ``cameras=6``)."""
        out = []
        for d in self.shape:
            if isinstance(d, str):
                if d not in dims:
                    raise BundleError(f"input {self.name!r} has dynamic axis {d!r}; give its size")
                out.append(int(dims[d]))
            else:
                out.append(int(d))
        return tuple(out)


@dataclass
class Preprocessing:
    """How a camera frame becomes the model input (the runtime and calibration share this).

    ``mean``/``std`` are in 0..1 pixel units, applied after dividing by 255. ``resize`` is
    ``"stretch"`` (plain resize to ``image_size``) or ``"letterbox"`` (keep aspect, pad with
    ``pad_value``). ``fused`` means the graph itself takes uint8 frames (N, H, W, 3) of
    ``source_size`` in ``source_channel_order`` and does all of this on the accelerator;
    ``fused_nodes`` names the graph nodes that do it (kept FP32 by calibration).
    """

    image_size: tuple[int, int]  # (H, W) of the model input, pixels
    channel_order: str = "RGB"
    layout: str = "NCHW"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    resize: str = "stretch"
    interpolation: str = "linear"
    pad_value: int = 114
    fused: bool = False
    source_size: tuple[int, int] | None = None  # (H, W) of the raw frames when fused
    source_channel_order: str = "RGB"  # channel order of the raw frames when fused (RGB or BGR)
    fused_nodes: list[str] = field(default_factory=list)


@dataclass
class OutputError:
    max_abs: float
    max_rel: float
    mean_abs: float = 0.0


@dataclass
class ParityRecord:
    """PyTorch vs ONNX Runtime on the same inputs (export) for one graph."""

    atol: float
    rtol: float
    passed: bool
    cases: dict[str, dict[str, OutputError]] = field(default_factory=dict)  # case -> output -> error

    def worst(self) -> dict[str, OutputError]:
        worst: dict[str, OutputError] = {}
        for per_output in self.cases.values():
            for name, err in per_output.items():
                if name not in worst or err.max_abs > worst[name].max_abs:
                    worst[name] = err
        return worst


@dataclass
class LintFinding:
    rule: str
    severity: str  # "error" (TensorRT will not build it) or "warning" (builds, but slow or fragile)
    message: str
    hint: str
    node: str = ""


@dataclass
class Variant:
    """One ONNX file of a graph at one precision."""

    precision: Precision
    file: str
    sha256: str
    status: Status = Status.GOOD
    created_at: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # calibration settings, report summary


@dataclass
class Graph:
    """One exported graph. Most models have one (``model``); SAM has an image encoder and a
    prompt decoder."""

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    variants: list[Variant] = field(default_factory=list)
    parity: ParityRecord | None = None
    lint: list[LintFinding] = field(default_factory=list)

    def variant(self, precision: Precision | str) -> Variant | None:
        precision = Precision.parse(precision)
        return next((v for v in self.variants if v.precision == precision), None)

    def set_variant(self, variant: Variant) -> None:
        self.variants = [v for v in self.variants if v.precision != variant.precision] + [variant]

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise BundleError(f"graph {self.name!r} has no input {name!r}; inputs: {[s.name for s in self.inputs]}")


@dataclass
class Engine:
    """A TensorRT plan built from one variant, with the provenance needed to refuse a mismatch."""

    file: str
    graph: str
    precision: Precision
    tensorrt_version: str
    cuda_version: str
    gpu_name: str
    compute_capability: str
    profile: dict[str, list[int]]  # dynamic axis -> [min, opt, max], e.g. {"cameras": [1, 6, 6]}
    onnx_sha256: str
    plan_sha256: str
    build_seconds: float
    built_at: str
    status: Status = Status.GOOD
    golden: dict[str, Any] = field(default_factory=dict)  # agreement with ONNX Runtime on golden.npz
    options: dict[str, Any] = field(default_factory=dict)  # builder settings (workspace, opt level ...)
    onnx_file: str = ""  # the variant the plan was built from
    version_compatible: bool = False  # built with TensorRT's version-compatible flag (lean runtime inside)
    dla_core: int | None = None  # the DLA core the plan runs on (GPU fallback allowed); None: GPU only
    sm_count: int | None = None  # the building GPU's multiProcessorCount (tells Jetson modules apart)
    gpu_memory_mib: int | None = None  # the memory the building GPU may use, MiB
    dla_layers: int | None = None  # DLA engines: layers the engine inspector found on the DLA


class SourceKind(str, enum.Enum):
    """Where a bundle's graph came from (DESIGN.md decision 8: from then on every stage is the same)."""

    ZOO = "zoo"  # a named zoo model, perhaps on a pretrained backbone with the user's classes
    FACTORY = "factory"  # a user's Python function returning an nn.Module
    ONNX = "onnx"  # an ONNX file exported elsewhere: there is no PyTorch model to compare with


#: ``ModelSource.parity`` of an imported graph.
NO_TORCH_REFERENCE = "imported: no PyTorch reference"


@dataclass
class BackboneRecord:
    """The pretrained backbone a zoo model was built on: enough to rebuild its encoder without the file.

    ``layout``: timm | dinov2 | hf-vit | hf-dinov2; ``source``: the file or folder as given;
    ``sha256``: of its bytes (a folder: of its config and weight files); ``encoder``: the
    ``EncoderConfig`` it fits, as ``EncoderConfig.to_dict`` writes it.
    """

    layout: str
    source: str
    sha256: str
    encoder: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelSource:
    """What the bundle was made from. ``reference``: the zoo name, ``pkg.module:function`` or
    ``path/model.py:function``, or the ONNX file as given; ``sha256``: of the factory's file or the
    ONNX file; ``weights_sha256``: digest of the exported module's state dict (a rebuilt factory
    model is the bundle's only if it matches); ``parity``: what export parity was measured against."""

    kind: SourceKind = SourceKind.ZOO
    reference: str = ""
    sha256: str = ""
    backbone: BackboneRecord | None = None
    weights_sha256: str = ""
    parity: str = "pytorch"

    @property
    def has_torch_model(self) -> bool:
        return self.kind is not SourceKind.ONNX


@dataclass
class Manifest:
    model: str
    head: HeadSpec
    parameters: int
    image_size: tuple[int, int]
    patch_size: int | None  # None: an imported graph, whose patch size vitdeploy cannot know
    max_cameras: int
    opset: int
    preprocessing: Preprocessing
    graphs: list[Graph]
    class_names: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    created_at: str = ""
    vitdeploy_version: str = ""
    torch_version: str = ""
    export_seconds: float = 0.0
    calibration: dict[str, Any] = field(default_factory=dict)
    engines: list[Engine] = field(default_factory=list)
    source: ModelSource = field(default_factory=ModelSource)
    schema: int = SCHEMA_VERSION

    def graph(self, name: str | None = None) -> Graph:
        if name is None:
            if len(self.graphs) != 1:
                raise BundleError(
                    f"bundle of {self.model} has graphs {[g.name for g in self.graphs]}; say which one"
                )
            return self.graphs[0]
        for g in self.graphs:
            if g.name == name:
                return g
        raise BundleError(f"bundle of {self.model} has no graph {name!r}; graphs: {[g.name for g in self.graphs]}")

    def referenced_files(self) -> set[str]:
        """Every file of the bundle this manifest names: ONNX variants, their calibration reports
        and logs, engine plans."""
        names = {v.file for g in self.graphs for v in g.variants}
        for g in self.graphs:
            for v in g.variants:
                names.update(str(v.details[k]) for k in ("report", "log") if isinstance(v.details.get(k), str))
        names.update(str(c["report"]) for c in self.calibration.values()
                     if isinstance(c, dict) and isinstance(c.get("report"), str))
        names.update(e.file for e in self.engines)
        return {n for n in names if n and "/" not in n and "\\" not in n and n not in (".", "..")}

    # ---- JSON ---------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(_to_jsonable(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "manifest.json") -> Manifest:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BundleError(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}); re-export the bundle") from exc
        except RecursionError:
            raise BundleError(f"{source} is nested too deeply to be a manifest; re-export the bundle") from None
        if not isinstance(raw, dict):
            raise BundleError(f"{source} does not hold a manifest object; re-export the bundle")
        schema = raw.get("schema")
        if schema not in (1, SCHEMA_VERSION):
            raise BundleError(
                f"{source} has manifest schema {schema!r}, this vitdeploy reads 1 and {SCHEMA_VERSION}; re-export the bundle"
            )
        try:
            return _from_jsonable(cls, _migrate_1(raw) if schema == 1 else raw)
        except (TypeError, ValueError, KeyError, RecursionError) as exc:
            raise BundleError(f"{source} is malformed ({exc}); re-export the bundle") from exc


def _migrate_1(raw: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 manifest (``head`` a string, ``head_config`` beside it) as schema 2. Its score
    activation is left to the head kind's default (every schema-1 head used its kind's default);
    the old ``box_format`` string of ``head_config`` becomes a ``BoxFormat``."""
    raw = dict(raw)
    config = dict(raw.pop("head_config", None) or {})
    head: dict[str, Any] = {"kind": raw.get("head"), "config": config}
    legacy = config.pop("box_format", None)
    if legacy is not None:
        layout, _, units = str(legacy).partition("_")  # e.g. "cxcywh_normalized"
        head["boxes"] = _to_jsonable(BoxFormat(BoxLayout(layout), BoxUnits(units)))
    raw["head"] = head
    raw["schema"] = 2
    return raw


def _to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return obj


def _from_jsonable(tp: Any, value: Any) -> Any:
    """``value`` (parsed JSON) as type ``tp``; TypeError or ValueError when it is not one."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _from_jsonable(option, value)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"expected {tp}, got {value!r:.40}")
    if tp in _PRIMITIVES:
        return _primitive(tp, value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {tp.__name__}, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _from_jsonable(hints[f.name], value[f.name])
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if not isinstance(value, str):
            raise TypeError(f"expected one of {[m.value for m in tp]}, got {value!r:.40}")
        return tp(value)
    if origin in (list, tuple, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {value!r:.40}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            return tuple(_from_jsonable(a, v) for a, v in zip(args, value, strict=True))
        items = [_from_jsonable(args[0], v) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {value!r:.40}")
        return {k: _from_jsonable(args[1], v) for k, v in value.items()} if args else dict(value)
    raise TypeError(f"the manifest cannot hold a {tp}")  # a field type this reader does not know


_PRIMITIVES = (bool, int, float, str)


def _primitive(tp: type, value: Any) -> Any:
    """JSON's bool, int, float and str as the field's type: an int is a float too, a bool no number."""
    ok = (isinstance(value, bool) if tp is bool
          else isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float
          else isinstance(value, tp) and not isinstance(value, bool))
    if not ok:
        raise TypeError(f"expected {tp.__name__}, got {value!r:.40}")
    return float(value) if tp is float else value
