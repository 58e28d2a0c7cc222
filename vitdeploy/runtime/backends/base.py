"""The one backend contract (DESIGN.md decision 5).

Every backend — onnxruntime, torch, tensorrt — describes its inputs and outputs with the
manifest's ``TensorSpec`` (dynamic axes by name, e.g. ``cameras``), is a context manager, and
validates a feed's names, dtypes and shapes before running it, so a wrong feed is a clear
``BackendError`` instead of a crash deep inside a runtime. The runtime, bench and eval are written
once against this class.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from vitdeploy.bundle.manifest import TensorSpec
from vitdeploy.errors import BackendError


@dataclass
class Timing:
    """Where the last ``infer`` spent its time, milliseconds. A backend that cannot tell the
    transfers apart from compute reports only ``total_ms``."""

    total_ms: float = 0.0
    h2d_ms: float | None = None
    compute_ms: float | None = None
    d2h_ms: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


class Backend(abc.ABC):
    #: short name used on the command line: "onnxruntime", "torch", "tensorrt"
    name: str = ""

    def __init__(self, *, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 dim_ranges: dict[str, tuple[int, int]] | None = None):
        self.inputs = inputs
        self.outputs = outputs
        self.dim_ranges = dict(dim_ranges or {})
        self.last_timing = Timing()

    # ---- the contract -------------------------------------------------------------------------
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """feed: input name -> array; returns output name -> array (host memory, float32/...)."""
        self.validate(feed)
        return self._infer(feed)

    @abc.abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None:  # noqa: B027 - most backends have nothing to release
        """Release sessions, contexts and device memory."""

    def describe(self) -> dict[str, str]:
        """Versions and device for reports (bench JSON)."""
        return {"backend": self.name}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- validation ---------------------------------------------------------------------------
    def validate(self, feed: dict[str, np.ndarray]) -> None:
        want = {s.name for s in self.inputs}
        got = set(feed)
        if want != got:
            missing = sorted(want - got)
            extra = sorted(got - want)
            raise BackendError(f"{self.name}: feed has inputs {sorted(got)}, the model takes {sorted(want)}"
                               + (f" (missing {missing})" if missing else "") + (f" (unexpected {extra})" if extra else ""))
        seen: dict[str, int] = {}
        for spec in self.inputs:
            arr = feed[spec.name]
            if not isinstance(arr, np.ndarray):
                raise BackendError(f"{self.name}: input {spec.name!r} must be a numpy array, got {type(arr).__name__}")
            if arr.dtype != np.dtype(spec.dtype):
                raise BackendError(f"{self.name}: input {spec.name!r} has dtype {arr.dtype}, the model takes {spec.dtype}")
            if arr.ndim != len(spec.shape):
                raise BackendError(f"{self.name}: input {spec.name!r} has shape {arr.shape}, the model takes "
                                   f"{_fmt(spec.shape)}")
            for axis, (size, dim) in enumerate(zip(arr.shape, spec.shape, strict=True)):
                if isinstance(dim, int):
                    if size != dim:
                        raise BackendError(f"{self.name}: input {spec.name!r} has shape {arr.shape}, the model takes "
                                           f"{_fmt(spec.shape)} (axis {axis} must be {dim})")
                    continue
                lo, hi = self.dim_ranges.get(dim, (1, None))
                if size < lo or (hi is not None and size > hi):
                    raise BackendError(f"{self.name}: input {spec.name!r} has {dim}={size}, the model takes "
                                       f"{lo}..{hi} (re-export with a larger --max-cameras)")
                if seen.setdefault(dim, size) != size:
                    raise BackendError(f"{self.name}: inputs disagree on {dim} ({seen[dim]} vs {size})")


def _fmt(shape: list) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"
