"""Inference backends behind one contract (``base.Backend``), opened by name.

Each backend lives in its own module, is imported only when asked for (so ``import vitdeploy``
works without TensorRT or a GPU), and never imports another backend. Every backend module has a
``from_bundle(bundle, *, precision, device, ...) -> Backend`` function; ``open_backend`` calls it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from vitdeploy.bundle import Bundle, Precision
from vitdeploy.errors import BackendError, MissingDependencyError
from vitdeploy.extras import error_for_missing_module
from vitdeploy.runtime.backends.base import Backend, Timing

if TYPE_CHECKING:
    from torch import nn

__all__ = ["BACKEND_KINDS", "Backend", "Timing", "open_backend"]

BACKEND_KINDS = ("onnxruntime", "torch", "tensorrt")

#: The device each backend runs on when none is named.
DEFAULT_DEVICES = {"onnxruntime": "cpu", "torch": "cpu", "tensorrt": "cuda"}


def open_backend(kind: str, bundle: Bundle, *, precision: Precision | str = Precision.FP32,
                 device: str | None = None, model: nn.Module | None = None, allow_rejected: bool = False,
                 exclusive_cpu: bool = False) -> Backend:
    """A backend of ``kind`` (onnxruntime | torch | tensorrt) for ``bundle`` at ``precision``.

    ``device``: for onnxruntime the execution provider (cpu | cuda | tensorrt), for torch the torch
    device (cpu | cuda), for tensorrt the GPU (cuda or cuda:N); None is ``DEFAULT_DEVICES[kind]``.
    ``model`` is the built PyTorch model, needed only by the torch backend. A graph calibration
    rejected (and an engine built from one) is refused unless ``allow_rejected``.
    ``exclusive_cpu``: nothing else runs on the CPU between inferences (a back-to-back benchmark,
    not a rig with camera decoders), so onnxruntime's idle threads spin instead of sleeping, as
    torch's OpenMP threads do (``SessionSettings.spinning``).
    """
    if kind not in BACKEND_KINDS:
        raise BackendError(f"unknown backend {kind!r}; choose one of: {', '.join(BACKEND_KINDS)}")
    device = device or DEFAULT_DEVICES[kind]
    module_name = f"vitdeploy.runtime.backends.{kind}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # the backend's own library is missing: name its extra if one brings it
            missing = error_for_missing_module(exc, needed_by=f"the {kind} backend")
            if missing is None:
                raise
            raise missing from exc
        raise MissingDependencyError(f"the {kind} backend (vitdeploy.runtime.backends.{kind})",
                                     install='pip install "vitdeploy[tensorrt]" and a vitdeploy with the '
                                             f'{kind} backend') from None
    if kind == "torch":
        return module.from_bundle(bundle, model=model, precision=precision, device=device)
    if kind == "onnxruntime":
        return module.from_bundle(bundle, precision=precision, device=device, allow_rejected=allow_rejected,
                                  spinning=exclusive_cpu)
    return module.from_bundle(bundle, precision=precision, device=device, allow_rejected=allow_rejected)
