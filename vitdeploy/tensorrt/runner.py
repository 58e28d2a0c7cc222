"""The engine side of the tensorrt backend: a bundle's plan on an NVIDIA GPU, behind the one
backend contract (``vitdeploy.runtime.backends.tensorrt`` hands it to the backend registry).

Before a plan is deserialized its provenance in the manifest is compared with the running
TensorRT, CUDA and GPU, and its bytes with the recorded sha256; a mismatch is an error that names
both sides and the `vitdeploy build` line that makes a fitting engine (DESIGN.md decision 4).

Running uses TensorRT's named-tensor API: one pinned host buffer and one device buffer per I/O
tensor, sized for the profile's largest shapes and allocated once, so any camera count inside
the profile runs without allocating. Per call: copy the feed into pinned memory, then on one
CUDA stream the host-to-device copies, ``execute_async_v3`` and the device-to-host copies, with
CUDA events between them for ``last_timing`` (h2d / compute / d2h, milliseconds).

With ``cuda_graphs=True`` the engine's work for each input shape is captured once into a CUDA
graph and replayed. Each captured shape gets its own execution context (a graph is fixed to the
context state it was captured with), which costs that context's activation memory per shape.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitdeploy.bundle import Bundle, Engine, Precision, Status, TensorSpec
from vitdeploy.errors import BackendError
from vitdeploy.runtime.backends.base import Backend
from vitdeploy.tensorrt.compat import (
    device_index,
    import_cuda,
    import_tensorrt,
    open_device,
    probe_machine,
    recording_logger,
)
from vitdeploy.tensorrt.cuda_graph import CudaGraph
from vitdeploy.tensorrt.provenance import (
    EngineMismatchError,
    ensure_runnable,
    plan_file_name,
    rebuild_command,
)

ShapeKey = tuple[tuple[str, tuple[int, ...]], ...]


@dataclass
class _Buffer:
    """A pinned host buffer and a device buffer for one I/O tensor, sized for its largest shape."""

    name: str
    dtype: np.dtype
    host: np.ndarray  # flat, page-locked
    device: Any  # pycuda DeviceAllocation

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.host[: math.prod(shape)].reshape(shape)


class TensorRTBackend(Backend):
    """Runs the plan at ``plan`` whose manifest record is ``engine``. ``inputs``/``outputs`` come
    from the manifest; their dtypes are taken from the engine (an FP16 plan with FP16 I/O is fed
    float16). ``device``: ``cuda`` or ``cuda:N``. ``bundle_path`` is named in rebuild hints."""

    name = "tensorrt"

    def __init__(self, plan: str | Path, *, engine: Engine, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 device: str | int = "cuda", cuda_graphs: bool = False, bundle_path: str | Path | None = None):
        self._cuda_ctx = None
        self._buffers: dict[str, _Buffer] = {}
        self._graphs: dict[ShapeKey, tuple[Any, CudaGraph]] = {}
        self._engine = None
        self.plan_path = Path(plan)
        self.record = engine
        self.cuda_graphs = cuda_graphs
        bundle_path = Path(bundle_path) if bundle_path is not None else self.plan_path.parent
        trt = import_tensorrt()
        cuda = import_cuda()
        self._trt, self._cuda = trt, cuda
        index = device_index(device)
        self._cuda_ctx = open_device(cuda, index)
        try:
            self.machine = probe_machine(trt, cuda, index)
            ensure_runnable(engine, self.machine, bundle_path=bundle_path)  # before TensorRT sees the bytes
            data = self._read_plan(bundle_path)
            self._logger = recording_logger(trt)
            self._runtime = trt.Runtime(self._logger)
            if engine.version_compatible:
                # the plan carries its own lean runtime (host code); its sha256 was checked above
                self._runtime.engine_host_code_allowed = True
            if engine.dla_core is not None:
                self._runtime.DLA_core = engine.dla_core
            self._engine = self._runtime.deserialize_cuda_engine(data)
            if self._engine is None:
                said = "; ".join(self._logger.errors()[-3:]) or "no error was logged"
                raise BackendError(f"tensorrt: cannot load {self.plan_path.name}: {said}; rebuild it with: "
                                   f"{rebuild_command(bundle_path, engine)}")
            specs_in, specs_out, dim_ranges, max_in = self._io(inputs, outputs)
            super().__init__(inputs=specs_in, outputs=specs_out, dim_ranges=dim_ranges)
            self._stream = cuda.Stream()
            self._events = [cuda.Event() for _ in range(4)]
            self._main = self._create_context()
            self._main_shapes: ShapeKey = ()
            self._allocate(max_in)
            self._bind(self._main)
        except BaseException:
            self._release()
            self._pop()
            self._cuda_ctx.detach()
            self._cuda_ctx = None
            raise
        self._pop()

    # ---- setting up ---------------------------------------------------------------------------
    def _read_plan(self, bundle_path: Path) -> bytes:
        if not self.plan_path.is_file():
            raise BackendError(f"tensorrt: plan {self.plan_path} is listed in the manifest but missing; rebuild it "
                               f"with: {rebuild_command(bundle_path, self.record)}")
        data = self.plan_path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.record.plan_sha256:
            raise EngineMismatchError(f"tensorrt: {self.plan_path.name} is not the plan the manifest recorded (sha256 "
                                      f"{digest[:12]}..., recorded {self.record.plan_sha256[:12]}...); rebuild it "
                                      f"with: {rebuild_command(bundle_path, self.record)}")
        return data

    def _io(self, inputs: list[TensorSpec], outputs: list[TensorSpec]):
        trt, eng = self._trt, self._engine
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        have_in = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        have_out = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if sorted(have_in) != sorted(s.name for s in inputs) or sorted(have_out) != sorted(s.name for s in outputs):
            raise BackendError(f"tensorrt: {self.plan_path.name} has inputs {have_in} and outputs {have_out}, the "
                               f"manifest lists {[s.name for s in inputs]} and {[s.name for s in outputs]}; rebuild it")
        self._dtypes = {n: np.dtype(trt.nptype(eng.get_tensor_dtype(n))) for n in names}
        lows: dict[str, int] = {}
        highs: dict[str, int] = {}
        max_in: dict[str, tuple[int, ...]] = {}
        for spec in inputs:
            lo, _opt, hi = (tuple(int(d) for d in s) for s in eng.get_tensor_profile_shape(spec.name, 0))
            max_in[spec.name] = hi
            for axis, dim in spec.dynamic_axes.items():  # an axis shared by inputs: what all of them take
                lows[dim] = max(lows.get(dim, lo[axis]), lo[axis])
                highs[dim] = min(highs.get(dim, hi[axis]), hi[axis])
        dim_ranges = {dim: (lows[dim], highs[dim]) for dim in lows}
        retyped = [TensorSpec(s.name, self._dtypes[s.name].name, list(s.shape), s.meaning) for s in inputs]
        retyped_out = [TensorSpec(s.name, self._dtypes[s.name].name, list(s.shape), s.meaning) for s in outputs]
        return retyped, retyped_out, dim_ranges, max_in

    def _allocate(self, max_in: dict[str, tuple[int, ...]]) -> None:
        cuda = self._cuda
        for name, shape in max_in.items():
            if not self._main.set_input_shape(name, shape):
                raise BackendError(f"tensorrt: {self.plan_path.name} rejects its own largest shape {shape} for {name!r}")
        shapes = dict(max_in)
        shapes.update({s.name: tuple(int(d) for d in self._main.get_tensor_shape(s.name)) for s in self.outputs})
        for name, shape in shapes.items():
            dtype = self._dtypes[name]
            count = max(1, math.prod(shape))
            host = cuda.pagelocked_empty(count, dtype)
            self._buffers[name] = _Buffer(name, dtype, host, cuda.mem_alloc(host.nbytes))
        self._main_shapes = tuple(sorted(max_in.items()))

    def _create_context(self) -> Any:
        context = self._engine.create_execution_context()
        if context is None:
            raise BackendError(f"tensorrt: cannot create an execution context for {self.plan_path.name} "
                               f"(out of GPU memory?): {self._said()}")
        return context

    def _bind(self, context: Any) -> None:
        for name, buf in self._buffers.items():
            context.set_tensor_address(name, int(buf.device))

    def _context_for(self, shapes: ShapeKey) -> tuple[Any, CudaGraph | None]:
        """The execution context (and CUDA graph, when enabled) for these input shapes."""
        if not self.cuda_graphs:
            if shapes != self._main_shapes:
                self._set_shapes(self._main, shapes)
                self._main_shapes = shapes
            return self._main, None
        if shapes not in self._graphs:
            context = self._create_context()
            self._bind(context)
            self._set_shapes(context, shapes)
            handle = self._stream.handle
            # one ordinary run first: TensorRT finishes shape-dependent setup outside the capture
            if not context.execute_async_v3(handle):
                raise BackendError(f"tensorrt: running {self.plan_path.name} failed: {self._said()}")
            self._stream.synchronize()
            self._graphs[shapes] = (context, CudaGraph.capture(handle, lambda: context.execute_async_v3(handle)))
        return self._graphs[shapes]

    def _set_shapes(self, context: Any, shapes: ShapeKey) -> None:
        for name, shape in shapes:
            if not context.set_input_shape(name, shape):
                raise BackendError(f"tensorrt: {self.plan_path.name} does not take {name!r} of shape {shape} "
                                   f"(profile {self.record.profile}): {self._said()}")

    def _said(self) -> str:
        return "; ".join(self._logger.errors()[-3:]) or "no error was logged"

    # ---- the contract -------------------------------------------------------------------------
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda = self._cuda
        start = time.perf_counter()
        self._cuda_ctx.push()
        try:
            shapes: ShapeKey = tuple(sorted((name, tuple(arr.shape)) for name, arr in feed.items()))
            context, graph = self._context_for(shapes)
            for name, arr in feed.items():
                np.copyto(self._buffers[name].view(arr.shape), arr)
            out_shapes = {s.name: tuple(int(d) for d in context.get_tensor_shape(s.name)) for s in self.outputs}
            staged = time.perf_counter()
            stream = self._stream
            e_start, e_h2d, e_compute, e_d2h = self._events
            e_start.record(stream)
            for name, arr in feed.items():
                buf = self._buffers[name]
                cuda.memcpy_htod_async(buf.device, buf.view(arr.shape), stream)
            e_h2d.record(stream)
            if graph is not None:
                graph.launch(stream.handle)
            elif not context.execute_async_v3(stream.handle):
                raise BackendError(f"tensorrt: running {self.plan_path.name} failed: {self._said()}")
            e_compute.record(stream)
            for name, shape in out_shapes.items():
                buf = self._buffers[name]
                cuda.memcpy_dtoh_async(buf.view(shape), buf.device, stream)
            e_d2h.record(stream)
            stream.synchronize()
            result = {name: self._buffers[name].view(shape).copy() for name, shape in out_shapes.items()}
            t = self.last_timing
            t.h2d_ms = e_start.time_till(e_h2d)
            t.compute_ms = e_h2d.time_till(e_compute)
            t.d2h_ms = e_compute.time_till(e_d2h)
            t.extra = {"stage_ms": (staged - start) * 1e3}
        finally:
            self._pop()
        self.last_timing.total_ms = (time.perf_counter() - start) * 1e3
        return result

    def describe(self) -> dict[str, str]:
        m = self.machine
        return {"backend": self.name, "tensorrt": m.tensorrt_version, "cuda": m.cuda_version,
                "gpu": f"{m.gpu_name} (sm {m.compute_capability})", "plan": self.plan_path.name,
                "precision": self.record.precision.value, "cuda_graphs": "on" if self.cuda_graphs else "off"}

    def close(self) -> None:
        if self._cuda_ctx is None:
            return
        self._cuda_ctx.push()
        try:
            self._release()
        finally:
            self._pop()
            self._cuda_ctx.detach()
            self._cuda_ctx = None

    # ---- tearing down -------------------------------------------------------------------------
    def _release(self) -> None:
        """Free graphs, contexts, the engine and the buffers (the CUDA context must be current)."""
        for _context, graph in self._graphs.values():
            graph.close()
        self._graphs = {}
        self._main = None
        self._engine = None
        for buf in self._buffers.values():
            buf.device.free()
        self._buffers = {}

    def _pop(self) -> None:
        self._cuda.Context.pop()


def from_bundle(bundle: Bundle | str | Path, *, precision: Precision | str = Precision.FP32, device: str = "cuda",
                graph: str | None = None, cuda_graphs: bool = False, allow_failed: bool = False) -> TensorRTBackend:
    """The bundle's engine for ``graph`` at ``precision`` built for this GPU.

    An engine marked failed (it disagreed with the golden outputs) is refused unless
    ``allow_failed``, which is for inspecting it.
    """
    if not isinstance(bundle, Bundle):
        bundle = Bundle.open(bundle)
    g = bundle.manifest.graph(graph)
    p = Precision.parse(precision)
    trt, cuda = import_tensorrt(), import_cuda()
    index = device_index(device)
    context = open_device(cuda, index)
    try:
        machine = probe_machine(trt, cuda, index)
    finally:
        cuda.Context.pop()
        context.detach()
    candidates = [e for e in bundle.manifest.engines if e.graph == g.name and e.precision == p]
    build = f"vitdeploy build {bundle.path}" + ("" if p is Precision.FP32 else f" --{p.value}")
    if not candidates:
        raise BackendError(f"tensorrt: bundle {bundle.path} has no {p.value} engine for graph {g.name!r}; build one "
                           f"with: {build}")
    wanted = plan_file_name(g.name, p, machine.gpu_slug)
    engine = next((e for e in candidates if e.file == wanted), None)
    if engine is None:
        engine = next((e for e in candidates if e.file.startswith(wanted[: -len(".plan")] + "-dla")), candidates[0])
    if engine.status is Status.FAILED and not allow_failed:
        raise BackendError(f"tensorrt: engine {engine.file} failed its golden check when it was built "
                           f"({'; '.join(_failures(engine))}); rebuild it with: {rebuild_command(bundle.path, engine)}")
    return TensorRTBackend(bundle.file(engine.file), engine=engine, inputs=g.inputs, outputs=g.outputs, device=device,
                           cuda_graphs=cuda_graphs, bundle_path=bundle.path)


def _failures(engine: Engine) -> list[str]:
    cases = engine.golden.get("cases", {})
    found = [f"{case} {name}: {', '.join(a.get('failures', []))}" for case, per_output in cases.items()
             for name, a in per_output.items() if a.get("failures")]
    return found[:3] or ["no details recorded"]
