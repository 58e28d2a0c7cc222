"""The bundle: one folder per model with its ONNX files, engines and ``manifest.json``."""

from __future__ import annotations

import enum
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
    "FileState",
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
    "variant_verdict",
    "verify_files",
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

    def onnx_path(self, precision: Precision | str = Precision.FP32, graph: str | None = None, *,
                  allow_rejected: bool = False) -> Path:
        """The ONNX file of ``graph`` at ``precision``; an error names what the bundle has instead.

        A variant calibration marked rejected (below ``--min-agreement``) or failed is refused
        unless ``allow_rejected`` (the user's explicit ``--allow-rejected``, which callers record).
        """
        g = self.manifest.graph(graph)
        variant = g.variant(precision)
        if variant is None:
            have = ", ".join(v.precision.value for v in g.variants) or "none"
            p = Precision.parse(precision).value
            raise BundleError(
                f"bundle {self.path} has no {p} ONNX for graph {g.name!r} (has: {have}); "
                f"make it with `vitdeploy calibrate {self.path} --precision {p}`"
            )
        if variant.status is not Status.GOOD and not allow_rejected:
            p = variant.precision.value
            raise BundleError(f"{variant.file} in {self.path} is marked {variant.status.value} "
                              f"({variant_verdict(variant)}); recalibrate it (`vitdeploy calibrate {self.path} "
                              f"--precision {p}`) or pass --allow-rejected to use it anyway")
        path = self.path / variant.file
        if not path.is_file():
            raise BundleError(f"{path} is listed in the manifest but missing; re-run the command that made it")
        return path

    def rejected_variants(self, precision: Precision | str) -> list[str]:
        """What a run at ``precision`` uses although calibration rejected it, one line per graph
        (for the records of a command run with --allow-rejected); empty when all are good."""
        out = []
        for g in self.manifest.graphs:
            v = g.variant(precision)
            if v is not None and v.status is not Status.GOOD:
                out.append(f"{v.file}: {v.status.value} ({variant_verdict(v)}), used with --allow-rejected")
        return out


class FileState(str, enum.Enum):
    OK = "ok"
    CHANGED = "changed"  # its sha256 is not the one the manifest recorded
    MISSING = "missing"


def verify_files(bundle: Bundle) -> dict[str, FileState]:
    """Every file the manifest records a sha256 for (ONNX variants, engine plans) -> whether the
    file on disk still has it. Reads every byte of them."""
    recorded = {v.file: v.sha256 for g in bundle.manifest.graphs for v in g.variants}
    recorded.update({e.file: e.plan_sha256 for e in bundle.manifest.engines})
    states = {}
    for name, digest in recorded.items():
        path = bundle.path / name
        if not path.is_file():
            states[name] = FileState.MISSING
        else:
            states[name] = FileState.OK if sha256_file(path) == digest else FileState.CHANGED
    return states


def variant_verdict(variant: Variant) -> str:
    """Why a variant is not good, from what calibration recorded."""
    agreement = variant.details.get("agreement") if isinstance(variant.details, dict) else None
    if isinstance(agreement, dict) and isinstance(agreement.get("value"), (int, float)):
        floor = agreement.get("min")
        return (f"{agreement.get('metric', 'agreement')} {agreement['value']:.3f} with FP32"
                + (f", below the {floor:g} asked for" if isinstance(floor, (int, float)) else ""))
    return "it did not pass its check when it was made"
