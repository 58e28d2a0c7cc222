"""The tensorrt backend: a bundle's TensorRT plan on an NVIDIA GPU, behind the one backend contract.

This module is only the adapter that ``open_backend("tensorrt", ...)`` finds by name. The engine
work — provenance checks, deserializing, buffers, execution contexts, CUDA graphs, choosing the
bundle's engine for this GPU — lives in the TensorRT room, ``vitdeploy.tensorrt.runner``.

It is the one documented exception to the import order of DESIGN.md (``runtime/`` sits below
``tensorrt/``): a runtime backend adapter importing the TensorRT room, so that every backend is
opened the same way while everything TensorRT stays in one place. Importing it imports neither
TensorRT nor pycuda (they are imported when an engine is opened).
"""

from __future__ import annotations

from vitdeploy.tensorrt.runner import TensorRTBackend, from_bundle

__all__ = ["TensorRTBackend", "from_bundle"]
