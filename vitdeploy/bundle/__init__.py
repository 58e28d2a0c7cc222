"""The bundle: one folder per model with its ONNX files, engines and ``manifest.json``."""

from __future__ import annotations

from pathlib import Path

from vitdeploy.bundle.files import atomic_path, atomic_write_text, ensure_writable_dir, sha256_file
from vitdeploy.bundle.head import BoxFormat, BoxLayout, BoxUnits, HeadSpec, ScoreActivation
from vitdeploy.bundle.manifest import (
    CAMERA_AXIS,
    NO_TORCH_REFERENCE,
    BackboneRecord,
    Engine,
    Graph,
    LintFinding,
    Manifest,
    ModelSource,
    OutputError,
    ParityRecord,
    Precision,
    Preprocessing,
    SourceKind,
    Status,
    TensorSpec,
    Variant,
)
from vitdeploy.errors import BundleError

MANIFEST_NAME = "manifest.json"

__all__ = [
    "CAMERA_AXIS",
    "MANIFEST_NAME",
    "NO_TORCH_REFERENCE",
    "BackboneRecord",
    "BoxFormat",
    "BoxLayout",
    "BoxUnits",
    "Bundle",
    "Engine",
    "Graph",
    "HeadSpec",
    "LintFinding",
    "Manifest",
    "ModelSource",
    "OutputError",
    "ParityRecord",
    "Precision",
    "Preprocessing",
    "ScoreActivation",
    "SourceKind",
    "Status",
    "TensorSpec",
    "Variant",
    "atomic_path",
    "atomic_write_text",
    "ensure_writable_dir",
    "sha256_file",
]


class Bundle:
    """A bundle folder and its manifest. ``Bundle.open`` reads an existing one."""

    def __init__(self, path: str | Path, manifest: Manifest):
        self.path = Path(path)
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path) -> Bundle:
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"bundle folder {path} does not exist; create one with `vitdeploy export MODEL --out {path}`")
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise BundleError(f"{path} has no {MANIFEST_NAME}; it is not a vitdeploy bundle (make one with `vitdeploy export`)")
        try:
            text = manifest_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BundleError(f"cannot read {manifest_path}: {exc}") from exc
        return cls(path, Manifest.from_json(text, source=str(manifest_path)))

    def save(self) -> Path:
        target = self.path / MANIFEST_NAME
        atomic_write_text(target, self.manifest.to_json())
        return target

    def file(self, name: str) -> Path:
        return self.path / name

    def onnx_path(self, precision: Precision | str = Precision.FP32, graph: str | None = None) -> Path:
        """The ONNX file of ``graph`` at ``precision``; an error names what the bundle has instead."""
        g = self.manifest.graph(graph)
        variant = g.variant(precision)
        if variant is None:
            have = ", ".join(v.precision.value for v in g.variants) or "none"
            p = Precision.parse(precision).value
            raise BundleError(
                f"bundle {self.path} has no {p} ONNX for graph {g.name!r} (has: {have}); "
                f"make it with `vitdeploy calibrate {self.path} --precision {p}`"
            )
        path = self.path / variant.file
        if not path.is_file():
            raise BundleError(f"{path} is listed in the manifest but missing; re-run the command that made it")
        return path
