"""Shared fixtures. Exported test bundles are cached per session: exporting takes seconds."""

from __future__ import annotations

import os
import sys

import pytest
import torch

# Two cores in CI: one intra-op thread per test process keeps timings stable and avoids
# oversubscription when onnxruntime and torch run side by side.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """exported(name, **kwargs) -> Bundle, exported once per session and argument set."""
    from vitdeploy.exporter.export import export_model

    cache: dict = {}

    def get(name: str, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(name.replace("-", "_"))
            cache[key] = export_model(name, out=out, **kwargs).bundle
        return cache[key]

    return get


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make `import tensorrt` and both CUDA layers (pycuda, cuda-python) fail even where installed."""
    for name in ("tensorrt", "pycuda", "pycuda.driver", "cuda", "cuda.bindings", "cuda.bindings.runtime"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture(scope="session")
def tensorrt_gpu():
    """The tensorrt module on a machine with TensorRT, a CUDA layer and a CUDA GPU; skips elsewhere."""
    from vitdeploy.errors import MissingDependencyError
    from vitdeploy.tensorrt.compat import import_tensorrt
    from vitdeploy.tensorrt.cuda import open_gpu

    try:
        trt = import_tensorrt()
        open_gpu(0).close()
    except MissingDependencyError as exc:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {exc}")
    return trt
