"""Which CUDA library vitdeploy talks to the GPU through, and opening a GPU with it.

``open_gpu(index)`` returns a ``CudaLayer`` (``layer.py``) on pycuda where pycuda imports and sees
a GPU (the JetPack 6 / DriveOS 7 installs vitdeploy has always run on), else on NVIDIA's
cuda-python (``cuda.bindings``: CUDA 13, Jetson Thor, JetPack 7, where older pycuda releases do not
build). ``VITDEPLOY_CUDA_LAYER=cuda-python`` (or ``pycuda``) chooses one explicitly.
``cuda_layer_in_use()`` says which one a run would use, without touching a GPU (for
`vitdeploy doctor`).
"""

from __future__ import annotations

import os

from vitdeploy.errors import BackendError, MissingDependencyError
from vitdeploy.extras import Extra, install_command, installed
from vitdeploy.tensorrt.cuda.layer import CudaLayer, DeviceBuffer, DeviceInfo, Event, HostBuffer, Stream

__all__ = ["LAYERS", "CudaLayer", "DeviceBuffer", "DeviceInfo", "Event", "HostBuffer", "Stream",
           "cuda_layer_in_use", "open_gpu"]

#: The CUDA layers, in the order they are tried.
LAYERS = ("pycuda", "cuda-python")
ENV = "VITDEPLOY_CUDA_LAYER"
INSTALL_HINT = install_command([Extra.TENSORRT])
# the module each layer needs, to tell "installed" from "not installed" without importing it
_MODULES = {"pycuda": "pycuda.driver", "cuda-python": "cuda"}


def _wanted() -> tuple[str, ...]:
    choice = os.environ.get(ENV, "").strip().lower()
    if not choice:
        return LAYERS
    if choice not in LAYERS:
        raise BackendError(f"{ENV}={choice!r} is not a CUDA layer; choose one of: {', '.join(LAYERS)}")
    return (choice,)


def _installed(layer: str) -> bool:
    return installed(_MODULES[layer].split(".")[0])


def cuda_layer_in_use() -> str:
    """The CUDA layer ``open_gpu`` would use: "pycuda", "cuda-python", or "none (...)" with the
    install that would give one. Imports nothing and touches no GPU."""
    try:
        wanted = _wanted()
    except BackendError as exc:
        return f"none ({exc})"
    for layer in wanted:
        if _installed(layer):
            return layer
    return f"none (neither {' nor '.join(wanted)} is installed; {INSTALL_HINT})"


def open_gpu(index: int) -> CudaLayer:
    """GPU ``index`` through the first CUDA layer that imports and sees a GPU; else
    ``MissingDependencyError`` naming what each layer said and the install."""
    said = []
    for layer in _wanted():
        try:
            if layer == "pycuda":
                from vitdeploy.tensorrt.cuda.pycuda_layer import PycudaLayer, import_pycuda

                return PycudaLayer(import_pycuda(INSTALL_HINT), index)
            from vitdeploy.tensorrt.cuda.bindings_layer import BindingsLayer, import_cudart

            return BindingsLayer(import_cudart(INSTALL_HINT), index)
        except MissingDependencyError as exc:
            said.append(exc.what)
    raise MissingDependencyError(" or ".join(said) if len(said) > 1 else said[0], install=INSTALL_HINT)
