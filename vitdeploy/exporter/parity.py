"""Parity: PyTorch and ONNX Runtime on the same inputs must agree within a stated tolerance.

An output element passes when ``|onnx - torch| <= atol + rtol * |torch|`` (numpy's allclose
rule). FP32 defaults: atol 1e-4, rtol 1e-3 — tight enough to catch a wrong op or a specialised
axis, loose enough for the different summation orders of two correct implementations.

Memory: a graph whose every input and output has the camera axis first answers each camera on its
own, so a case is run ``PARITY_CHUNK_CAMERAS`` cameras at a time and the errors are pooled, and
ONNX Runtime returns its memory after each run. Peak memory is then that of a two-camera batch
whatever the camera count: SAM ViT-B takes about 3 GB per camera in either runtime (its global
attention matrices are 0.8 GB each), and all 8 cameras at once went over 24 GB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vitdeploy.bundle.manifest import CAMERA_AXIS, OutputError, ParityRecord
from vitdeploy.exporter.graphs import GraphSpec, ParityCase
from vitdeploy.runtime.backends.onnxruntime import cpu_session

FP32_ATOL = 1e-4
FP32_RTOL = 1e-3
#: Cameras per parity run of a per-camera graph: more than one, so that every run still checks
#: that the cameras of a batch do not mix; no more, so that memory does not grow with the rig.
PARITY_CHUNK_CAMERAS = 2


def compare_outputs(ref: np.ndarray, got: np.ndarray) -> OutputError:
    return _ErrorSum().add(ref, got).result()


class _ErrorSum:
    """``compare_outputs`` pooled over the chunks of one output."""

    def __init__(self):
        self.max_abs, self.scale, self.total, self.count = 0.0, 0.0, 0.0, 0

    def add(self, ref: np.ndarray, got: np.ndarray) -> _ErrorSum:
        diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
        if diff.size:
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.scale = max(self.scale, float(np.abs(ref).max()))
            self.total += float(diff.sum())
            self.count += diff.size
        return self

    def result(self) -> OutputError:
        return OutputError(max_abs=self.max_abs, max_rel=self.max_abs / self.scale if self.scale > 0 else 0.0,
                           mean_abs=self.total / self.count if self.count else 0.0)


def run_torch(spec: GraphSpec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        outs = spec.module.eval()(*[torch.from_numpy(feeds[t.name]) for t in spec.inputs])
    if isinstance(outs, torch.Tensor):
        outs = (outs,)
    return {t.name: o.numpy() for t, o in zip(spec.outputs, outs, strict=True)}


def default_cases(spec: GraphSpec, *, seed: int = 0) -> list[ParityCase]:
    """Random inputs at the smallest and largest size of every dynamic axis."""
    rng = np.random.default_rng(seed)
    cases = []
    for label, pick in (("min", 0), ("max", 1)):
        dims = {name: rng_range[pick] for name, rng_range in spec.dim_ranges.items()}
        cases.append(ParityCase(f"random@{_dims_label(dims)}" if dims else f"random-{label}",
                                spec.make_inputs(dims, rng)))
    return cases


def _dims_label(dims: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in dims.items())


def camera_chunks(spec: GraphSpec, feeds: dict[str, np.ndarray], *,
                  size: int = PARITY_CHUNK_CAMERAS) -> list[dict[str, np.ndarray]]:
    """``feeds`` cut into runs of at most ``size`` cameras when every input and output of the
    graph has the camera axis first (each camera is answered on its own); else ``[feeds]``."""
    per_camera = all(t.shape and t.shape[0] == CAMERA_AXIS for t in [*spec.inputs, *spec.outputs])
    if not per_camera:
        return [feeds]
    cameras = next(iter(feeds.values())).shape[0]
    return [{k: v[i:i + size] for k, v in feeds.items()} for i in range(0, cameras, size)]


def check_parity(spec: GraphSpec, onnx_path: str | Path, *, atol: float = FP32_ATOL, rtol: float = FP32_RTOL,
                 seed: int = 0) -> ParityRecord:
    """PyTorch against ONNX Runtime on ``default_cases`` and the spec's own cases, each run in
    ``camera_chunks``; ONNX Runtime returns its memory after each run (its arena would keep the
    largest run's peak beside PyTorch's next one: SAM ViT-B takes about 3 GB per camera)."""
    session = cpu_session(onnx_path, memory_arena=False)
    names = [o.name for o in session.get_outputs()]
    record = ParityRecord(atol=atol, rtol=rtol, passed=True)
    for case in [*default_cases(spec, seed=seed), *spec.parity_cases]:
        sums = {t.name: _ErrorSum() for t in spec.outputs}
        broken: set[str] = set()
        for feeds in camera_chunks(spec, case.feeds):
            ref = run_torch(spec, feeds)
            got = dict(zip(names, session.run(None, feeds), strict=True))
            for name, r in ref.items():
                g = got[name]
                if g.shape != r.shape:
                    broken.add(name)
                    continue
                sums[name].add(r, g)
                if not np.allclose(g, r, atol=atol, rtol=rtol):
                    record.passed = False
            del ref, got
        errors = {name: total.result() for name, total in sums.items()}
        for name in broken:
            errors[name] = OutputError(max_abs=float("inf"), max_rel=float("inf"))
            record.passed = False
        record.cases[case.name] = errors
    return record
