"""Which configurations a benchmark or an evaluation runs: backend x precision (x camera count).

A configuration that cannot run on this machine or with this bundle is still planned: it is the
measurement that finds out, and the report says why it was skipped instead of leaving it out.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from vitdeploy.bundle import Bundle, Precision, Status
from vitdeploy.errors import DataError
from vitdeploy.extras import installed
from vitdeploy.runtime.backends import BACKEND_KINDS


@dataclass(frozen=True)
class Configuration:
    """One row of a benchmark: ``backend`` (onnxruntime | torch | tensorrt) at ``precision`` on
    ``cameras`` cameras (the batch axis); ``device`` as ``open_backend`` takes it (None: the
    backend's default)."""

    backend: str
    precision: Precision
    cameras: int = 1
    device: str | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        """What two reports are matched on."""
        return self.backend, self.precision.value, self.cameras

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision.value} x{self.cameras}"


def default_backends(bundle: Bundle) -> list[str]:
    """The backends a benchmark runs when none are named: onnxruntime, torch where it is installed
    (not on the car side), and tensorrt when the bundle has engines."""
    return (["onnxruntime"] + (["torch"] if installed("torch") else [])
            + (["tensorrt"] if bundle.manifest.engines else []))


def default_cameras(bundle: Bundle) -> list[int]:
    """The camera counts a benchmark runs when none are named: 1 and min(6, the bundle's maximum)."""
    return sorted({1, min(6, bundle.manifest.max_cameras)})


def bundle_precisions(bundle: Bundle, backend: str, *, allow_rejected: bool = False) -> list[Precision]:
    """The precisions ``backend`` can run for this bundle without being told: for onnxruntime the
    good ONNX variants in the bundle (and the rejected ones with ``allow_rejected``), for tensorrt
    the good engines, for torch FP32 (the model itself; FP16/INT8 graphs are not its)."""
    if backend == "torch":
        return [Precision.FP32]
    if backend == "tensorrt":
        found = {e.precision for e in bundle.manifest.engines if e.status == Status.GOOD}
    else:
        found = {v.precision for g in bundle.manifest.graphs for v in g.variants
                 if v.status == Status.GOOD or (allow_rejected and v.status == Status.REJECTED)}
    return [p for p in Precision if p in found]


def parse_backends(names: list[str]) -> list[str]:
    """Backend names checked against ``BACKEND_KINDS``, duplicates dropped, order kept."""
    bad = [n for n in names if n not in BACKEND_KINDS]
    if bad:
        raise DataError(f"unknown backend {bad[0]!r}; choose from: {', '.join(BACKEND_KINDS)}")
    return list(dict.fromkeys(names))


def parse_cameras(values: list[str]) -> list[int]:
    """'1', '6' -> [1, 6]; each a positive integer."""
    out = []
    for v in values:
        if not v.isdigit() or int(v) < 1:
            raise DataError(f"camera count {v!r} is not a positive integer; e.g. --cameras 1,6")
        out.append(int(v))
    return list(dict.fromkeys(out))


def plan(bundle: Bundle, *, backends: list[str] | None = None, precisions: list[Precision] | None = None,
         cameras: list[int] | None = None, device: str | None = None, allow_rejected: bool = False) -> list[Configuration]:
    """Every backend x precision x camera count. ``backends`` None: ``default_backends``;
    ``cameras`` None: ``default_cameras``; ``precisions`` None: each backend's
    ``bundle_precisions``; given explicitly, every backend is tried at every one (the ones it cannot
    run are reported as skipped)."""
    backends = default_backends(bundle) if backends is None else backends
    cameras = default_cameras(bundle) if cameras is None else cameras
    if not backends:
        raise DataError("no backend to run; e.g. --backend onnxruntime")
    out = []
    for backend in parse_backends(backends):
        chosen = (bundle_precisions(bundle, backend, allow_rejected=allow_rejected) if precisions is None
                  else list(dict.fromkeys(precisions)))
        if not chosen:  # e.g. tensorrt without engines: say so in the report instead of dropping the row
            chosen = [Precision.FP32]
        out += [Configuration(backend, p, n, device) for p, n in itertools.product(chosen, cameras)]
    return out
