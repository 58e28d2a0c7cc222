"""Parity: PyTorch and ONNX Runtime on the same inputs must agree within a stated tolerance.

An output element passes when ``|onnx - torch| <= atol + rtol * |torch|`` (numpy's allclose
rule). FP32 defaults: atol 1e-4, rtol 1e-3 — tight enough to catch a wrong op or a specialised
axis, loose enough for the different summation orders of two correct implementations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vitdeploy.bundle.manifest import OutputError, ParityRecord
from vitdeploy.exporter.graphs import GraphSpec, ParityCase
from vitdeploy.runtime.backends.onnxruntime import cpu_session

FP32_ATOL = 1e-4
FP32_RTOL = 1e-3


def compare_outputs(ref: np.ndarray, got: np.ndarray) -> OutputError:
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    diff = np.abs(ref - got)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    return OutputError(max_abs=max_abs, max_rel=max_abs / scale if scale > 0 else 0.0,
                       mean_abs=float(diff.mean()) if diff.size else 0.0)


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


def check_parity(spec: GraphSpec, onnx_path: str | Path, *, atol: float = FP32_ATOL, rtol: float = FP32_RTOL,
                 seed: int = 0) -> ParityRecord:
    session = cpu_session(onnx_path)
    record = ParityRecord(atol=atol, rtol=rtol, passed=True)
    for case in [*default_cases(spec, seed=seed), *spec.parity_cases]:
        ref = run_torch(spec, case.feeds)
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, case.feeds), strict=True))
        errors = {}
        for name, r in ref.items():
            g = got[name]
            if g.shape != r.shape:
                errors[name] = OutputError(max_abs=float("inf"), max_rel=float("inf"))
                record.passed = False
                continue
            errors[name] = compare_outputs(r, g)
            if not np.allclose(g, r, atol=atol, rtol=rtol):
                record.passed = False
        record.cases[case.name] = errors
    return record
