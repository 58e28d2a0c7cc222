"""ONNX Runtime backend: one bundle graph at one precision on the CPU, CUDA or TensorRT provider.

Because precision lives in the ONNX graph (DESIGN.md decision 1), FP16 and INT8 (Q/DQ) graphs run
here on a plain CPU too, which is how their accuracy is measured in CI. ``cpu_session`` and
``run_on_cpu`` are the one place a CPU session is made for everything that is not a backend
(export parity, calibration reports, TensorRT golden outputs): every room may import this layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitdeploy.bundle import Bundle, Precision, TensorSpec
from vitdeploy.bundle.manifest import CAMERA_AXIS
from vitdeploy.errors import BackendError, MissingDependencyError
from vitdeploy.runtime.backends.base import Backend

#: Short device names -> ONNX Runtime execution providers.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
              "tensor(int64)": "int64", "tensor(bool)": "bool"}


@dataclass(frozen=True)
class SessionSettings:
    """How an ONNX Runtime session runs: the one place these are chosen.

    ``threads``: intra-op threads (None: ONNX Runtime's default, one per physical core).
    ``spinning``: idle intra-op threads spin for the next job instead of sleeping. Off by default:
    in the runtime, inference shares the cores with the camera decoders and the other stages, and a
    spinning pool burns them between jobs — on this 2-core machine under load, demo-detr at 6
    cameras with 2 threads ran in 1262 ms p50 spinning vs 741 ms not (median of 5, one process,
    interleaved). ``memory_arena`` False returns the memory of a run when it ends (slower, but the
    largest run's peak is not kept for the session's life). Graph optimisation is ONNX Runtime's
    full level (its default), which fuses what it can for the provider at hand.
    ``fusions``: before the session opens, the backend replaces the graph's attention and GELU
    blocks with ONNX Runtime's fused CPU kernels, in memory (``onnxruntime_fusions``; the bundle's
    file is not changed). CPU provider only; needs the ``onnx`` package, and says when it is missing.
    demo-detr, 6 cameras, 2-core Zen 4, one process interleaved (32 runs each): 139.4 -> 125.2 ms p50
    spinning, 146.6 -> 133.3 not; adding a SkipLayerNormalization rewrite of residual + LayerNorm
    made it slower (139.7 spinning), so it is not made.
    """

    threads: int | None = None
    spinning: bool = False
    memory_arena: bool = True
    fusions: bool = True


def _session(model: Any, *, provider: str, settings: SessionSettings = SessionSettings()):
    """An ``ort.InferenceSession`` of ``model`` on ``provider``, with ONNX Runtime's warnings off.
    ``model``: a path, serialized ONNX bytes or an ``onnx.ModelProto`` (serialized here)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", install='pip install onnxruntime') from exc
    options = ort.SessionOptions()
    if settings.threads is not None:
        options.intra_op_num_threads = settings.threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spinning else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if not settings.memory_arena:
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=[provider])


def cpu_session(model: Any, *, threads: int | None = None, memory_arena: bool = True):
    """An ONNX Runtime session of ``model`` (a path, ONNX bytes or an ``onnx.ModelProto``) on the
    CPU provider: the reference every precision and every engine is measured against."""
    return _session(model, provider=PROVIDERS["cpu"], settings=SessionSettings(threads=threads, memory_arena=memory_arena))


def run_on_cpu(model: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of ``model`` for ``feeds`` on the CPU, output name -> array. ``model``: what
    ``cpu_session`` takes, or a session it made (reuse one for many runs: making it costs more
    than running a ViT on a few frames)."""
    session = model if hasattr(model, "get_outputs") else cpu_session(model)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def resolve_provider(device: str, available: list[str]) -> str:
    """``cpu``/``cuda``/``tensorrt`` or a full provider name -> the provider, if ORT has it."""
    provider = PROVIDERS.get(device.lower(), device)
    if provider not in available:
        names = ", ".join(PROVIDERS)
        raise BackendError(f"onnxruntime: requested provider {provider} (device {device!r}), available: {available}; "
                           f"choose one of those (short names: {names}) or install onnxruntime-gpu for CUDA/TensorRT")
    return provider


class OnnxRuntimeBackend(Backend):
    """Runs ``path`` with ONNX Runtime. ``inputs``/``outputs`` come from the manifest; the input
    dtypes are taken from the graph itself, so an FP16 graph with FP16 inputs is fed float16.
    ``threads`` sets intra-op threads (None: ONNX Runtime's default, one per core); ``settings``
    (``SessionSettings``) all of the session's options, ``threads`` included."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, *, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 dim_ranges: dict[str, tuple[int, int]] | None = None, device: str = "cpu",
                 threads: int | None = None, settings: SessionSettings | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", install='pip install onnxruntime') from exc
        provider = resolve_provider(device, ort.get_available_providers())
        self.settings = settings or SessionSettings(threads=threads)
        model, self.fusions = _with_fusions(path, wanted=self.settings.fusions and provider == PROVIDERS["cpu"])
        try:
            self.session = _session(model, provider=provider, settings=self.settings)
        except Exception as exc:  # ORT raises its own types for unreadable or invalid graphs
            rewritten = "" if model is path else (f" (rewritten for ONNX Runtime: {self.fusions}; "
                                                 "SessionSettings(fusions=False) loads the file as it is)")
            raise BackendError(f"onnxruntime cannot load {path}{rewritten}: {exc}") from exc
        if provider not in self.session.get_providers():
            raise BackendError(f"onnxruntime: requested provider {provider}, but the session fell back to "
                               f"{self.session.get_providers()}; check the CUDA/TensorRT libraries")
        self.provider = provider
        self.path = Path(path)
        graph_inputs = {i.name: i for i in self.session.get_inputs()}
        specs = []
        for spec in inputs:
            if spec.name not in graph_inputs:
                raise BackendError(f"onnxruntime: the manifest lists input {spec.name!r} but {path} has "
                                   f"{sorted(graph_inputs)}; re-export the bundle")
            dtype = _ORT_TYPES.get(graph_inputs[spec.name].type, spec.dtype)
            specs.append(TensorSpec(spec.name, dtype, list(spec.shape), spec.meaning))
        super().__init__(inputs=specs, outputs=outputs, dim_ranges=dim_ranges)
        self._output_names = [o.name for o in self.session.get_outputs()]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        try:
            values = self.session.run(self._output_names, feed)
        except Exception as exc:
            raise BackendError(f"onnxruntime failed running {self.path.name}: {exc}") from exc
        self.last_timing.total_ms = (time.perf_counter() - start) * 1e3
        return dict(zip(self._output_names, values, strict=True))

    def close(self) -> None:
        self.session = None

    def describe(self) -> dict[str, str]:
        import onnxruntime as ort

        return {"backend": self.name, "onnxruntime": ort.__version__, "provider": self.provider,
                "graph": self.path.name, "threads": str(self.settings.threads or "default"),
                "spinning": str(self.settings.spinning).lower(), "fusions": self.fusions}


def _with_fusions(path: str | Path, *, wanted: bool) -> tuple[Any, str]:
    """(what the session loads, what was fused, for ``describe()``): ``path`` itself unless
    ``wanted``, else the graph with ``onnxruntime_fusions`` applied, when anything matched."""
    if not wanted:
        return path, "off"
    try:
        import onnx
    except ImportError:  # the car-side install has no onnx: run the graph as it is, and say so
        return path, "off (onnx not installed: pip install onnx)"
    from vitdeploy.runtime.backends.onnxruntime_fusions import fuse_for_onnxruntime

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and OSError subclasses for unreadable files
        raise BackendError(f"onnxruntime cannot load {path}: {exc}") from exc
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        return path, "off (weights in external files)"  # ORT takes a graph in memory only below 2 GB
    fused, counts = fuse_for_onnxruntime(model)
    if counts.total == 0:
        return path, "none matched"
    return fused, counts.describe()


def from_bundle(bundle: Bundle, *, precision: Precision | str = Precision.FP32, device: str = "cpu",
                threads: int | None = None, graph: str | None = None, allow_rejected: bool = False,
                spinning: bool = False, settings: SessionSettings | None = None) -> OnnxRuntimeBackend:
    """The bundle's ``graph`` (default: its only one) at ``precision`` on ``device``; a graph
    calibration rejected is refused unless ``allow_rejected``. ``threads`` and ``spinning`` are
    ``SessionSettings`` fields, for when ``settings`` is not given."""
    g = bundle.manifest.graph(graph)
    return OnnxRuntimeBackend(bundle.onnx_path(precision, graph, allow_rejected=allow_rejected),
                              inputs=g.inputs, outputs=g.outputs,
                              dim_ranges={CAMERA_AXIS: (1, bundle.manifest.max_cameras)}, device=device,
                              settings=settings or SessionSettings(threads=threads, spinning=spinning))
