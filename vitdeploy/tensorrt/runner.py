"""The engine side of the tensorrt backend: a bundle's plan on an NVIDIA GPU, behind the one
backend contract (``vitdeploy.runtime.backends.tensorrt`` hands it to the backend registry).

Before a plan is deserialized its provenance in the manifest is compared with the running
TensorRT, CUDA and GPU (module included: SM count and memory), and its bytes with the recorded
sha256; a mismatch is an error that names both sides and the `vitdeploy build` line that makes a
fitting engine (DESIGN.md decision 4).

Running uses TensorRT's named-tensor API and the CUDA layer (``cuda/``: pycuda or cuda-python).
I/O buffers are sized for the profile's largest shapes and allocated once, so any camera count
inside the profile runs without allocating; on an integrated GPU they are zero-copy
(``buffers.py``). Per call, on one CUDA stream: the host-to-device copies, ``execute_async_v3`` and
the device-to-host copies, with CUDA events between them for ``last_timing`` (h2d / compute / d2h,
milliseconds; the copies are empty on an integrated GPU).

With ``cuda_graphs=True`` the engine's work for each input shape is captured once into a CUDA
graph and replayed. Each captured shape gets its own execution context (a graph is fixed to the
context state it was captured with); all contexts share one activation buffer. CUDA graphs are
refused for a DLA engine (``dla.py``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from vitdeploy.bundle import Bundle, Engine, Precision, Status, TensorSpec, variant_verdict
from vitdeploy.errors import BackendError
from vitdeploy.runtime.backends.base import Backend
from vitdeploy.tensorrt.buffers import EngineMemory
from vitdeploy.tensorrt.compat import (
    device_index,
    import_tensorrt,
    numpy_dtype,
    probe_machine,
    recording_logger,
)
from vitdeploy.tensorrt.cuda import CudaLayer, open_gpu
from vitdeploy.tensorrt.cuda_graph import CudaGraph
from vitdeploy.tensorrt.dla import check_cuda_graphs
from vitdeploy.tensorrt.memory import MemoryRow, activation_memory_rows
from vitdeploy.tensorrt.provenance import (
    EngineMismatchError,
    ensure_runnable,
    plan_file_name,
    rebuild_command,
)

ShapeKey = tuple[tuple[str, tuple[int, ...]], ...]


class TensorRTBackend(Backend):
    """Runs the plan at ``plan`` whose manifest record is ``engine``. ``inputs``/``outputs`` come
    from the manifest; their dtypes are taken from the engine (an FP16 plan with FP16 I/O is fed
    float16). ``device``: ``cuda`` or ``cuda:N``. ``bundle_path`` is named in rebuild hints."""

    name = "tensorrt"

    def __init__(self, plan: str | Path, *, engine: Engine, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 device: str | int = "cuda", cuda_graphs: bool = False, bundle_path: str | Path | None = None):
        self.plan_path = Path(plan)
        self.record = engine
        self.cuda_graphs = cuda_graphs
        check_cuda_graphs(dla_core=engine.dla_core, cuda_graphs=cuda_graphs, engine=self.plan_path.name)
        self._graphs: dict[ShapeKey, tuple[Any, CudaGraph]] = {}
        self._engine = self._main = self._memory = None
        bundle_path = Path(bundle_path) if bundle_path is not None else self.plan_path.parent
        trt = self._trt = import_tensorrt()
        self.gpu: CudaLayer = open_gpu(device_index(device))
        try:
            with self.gpu.current():
                self.machine = probe_machine(trt, self.gpu)
                ensure_runnable(engine, self.machine, bundle_path=bundle_path)  # before TensorRT sees the bytes
                self._load(self._read_plan(bundle_path), bundle_path)
                specs_in, specs_out, dim_ranges, max_in = self._io(inputs, outputs)
                super().__init__(inputs=specs_in, outputs=specs_out, dim_ranges=dim_ranges)
                self._stream = self.gpu.stream()
                self._events = [self.gpu.event() for _ in range(4)]
                self._memory = EngineMemory(self.gpu)
                self._memory.allocate_activations(int(self._engine.device_memory_size_v2))
                self._main = self._create_context()
                self._allocate(max_in)
        except BaseException:
            self.close()
            raise

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

    def _load(self, data: bytes, bundle_path: Path) -> None:
        self._logger = recording_logger(self._trt)
        self._runtime = self._trt.Runtime(self._logger)
        if self.record.version_compatible:
            # the plan carries its own lean runtime (host code); its sha256 was checked above
            self._runtime.engine_host_code_allowed = True
        if self.record.dla_core is not None:
            self._runtime.DLA_core = self.record.dla_core
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            said = "; ".join(self._logger.errors()[-3:]) or "no error was logged"
            raise BackendError(f"tensorrt: cannot load {self.plan_path.name}: {said}; rebuild it with: "
                               f"{rebuild_command(bundle_path, self.record)}")

    def _io(self, inputs: list[TensorSpec], outputs: list[TensorSpec]):
        trt, eng = self._trt, self._engine
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        have_in = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        have_out = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if sorted(have_in) != sorted(s.name for s in inputs) or sorted(have_out) != sorted(s.name for s in outputs):
            raise BackendError(f"tensorrt: {self.plan_path.name} has inputs {have_in} and outputs {have_out}, the "
                               f"manifest lists {[s.name for s in inputs]} and {[s.name for s in outputs]}; rebuild it")
        self._dtypes = {n: numpy_dtype(trt, eng.get_tensor_dtype(n), tensor=n, plan=self.plan_path.name)
                        for n in names}
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
        for name, shape in max_in.items():
            if not self._main.set_input_shape(name, shape):
                raise BackendError(f"tensorrt: {self.plan_path.name} rejects its own largest shape {shape} for {name!r}")
        shapes = dict(max_in)
        shapes.update({s.name: tuple(int(d) for d in self._main.get_tensor_shape(s.name)) for s in self.outputs})
        for name, shape in shapes.items():
            self._memory.add_tensor(name, self._dtypes[name], shape)
        self._main_shapes: ShapeKey = tuple(sorted(max_in.items()))
        self._bind(self._main)

    def _create_context(self) -> Any:
        """A context without memory of its own, given the engine's one activation buffer."""
        context = self._engine.create_execution_context(self._trt.ExecutionContextAllocationStrategy.USER_MANAGED)
        if context is None:
            raise BackendError(f"tensorrt: cannot create an execution context for {self.plan_path.name}: "
                               f"{self._said()}")
        activations = self._memory.activations
        context.set_device_memory(activations.address, activations.nbytes)
        return context

    def _bind(self, context: Any) -> None:
        for name, buf in self._memory.io.items():
            context.set_tensor_address(name, buf.address)

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
        start = time.perf_counter()
        with self.gpu.current():
            shapes: ShapeKey = tuple(sorted((name, tuple(arr.shape)) for name, arr in feed.items()))
            context, graph = self._context_for(shapes)
            out_shapes = {s.name: tuple(int(d) for d in context.get_tensor_shape(s.name)) for s in self.outputs}
            stream = self._stream
            e_start, e_h2d, e_compute, e_d2h = self._events
            e_start.record(stream)
            self._memory.copy_in(feed, stream)
            staged = time.perf_counter()
            e_h2d.record(stream)
            if graph is not None:
                graph.launch(stream.handle)
            elif not context.execute_async_v3(stream.handle):
                raise BackendError(f"tensorrt: running {self.plan_path.name} failed: {self._said()}")
            e_compute.record(stream)
            self._memory.copy_out(out_shapes, stream)
            e_d2h.record(stream)
            stream.synchronize()
            result = self._memory.read(out_shapes)
            t = self.last_timing
            t.h2d_ms = e_start.elapsed_ms(e_h2d)
            t.compute_ms = e_h2d.elapsed_ms(e_compute)
            t.d2h_ms = e_compute.elapsed_ms(e_d2h)
            t.extra = {"stage_ms": (staged - start) * 1e3}
        self.last_timing.total_ms = (time.perf_counter() - start) * 1e3
        return result

    def describe(self) -> dict[str, str]:
        m = self.machine
        return {"backend": self.name, "tensorrt": m.tensorrt_version, "cuda": m.cuda_version,
                "cuda_layer": f"{self.gpu.name} {self.gpu.library_version()}",
                "gpu": f"{m.gpu_name} (sm {m.compute_capability})", "plan": self.plan_path.name,
                "precision": self.record.precision.value, "cuda_graphs": "on" if self.cuda_graphs else "off",
                "io": "zero-copy" if self._memory.zero_copy else "pinned + device copies"}

    # ---- looking inside ---------------------------------------------------------------------------
    def engine_information(self) -> str:
        """TensorRT's engine inspector, all layers as JSON (``{"Layers": [...], ...}``)."""
        inspector = self._engine.create_engine_inspector()
        return str(inspector.get_engine_information(self._trt.LayerInformationFormat.JSON))

    def activation_memory(self) -> list[MemoryRow]:
        """Activation memory per camera count as TensorRT reports it, and what sharing one buffer
        across the contexts of 1..n captured camera counts saves (``memory.py``)."""
        cameras = self.dim_ranges.get("cameras")
        if cameras is None or len(self.inputs) != 1:
            raise BackendError("tensorrt: the activation-memory report covers one image input with a camera axis")
        spec = self.inputs[0]
        needed = {}
        with self.gpu.current():
            for n in range(cameras[0], cameras[1] + 1):
                self._set_shapes(self._main, ((spec.name, spec.concrete_shape(cameras=n)),))
                needed[n] = int(self._main.update_device_memory_size_for_shapes())
            self._main_shapes = ()
        return activation_memory_rows(engine_bytes=int(self._engine.device_memory_size_v2), needed=needed)

    # ---- tearing down -------------------------------------------------------------------------
    def close(self) -> None:
        gpu = getattr(self, "gpu", None)
        if gpu is None:
            return
        with gpu.current():
            for _context, graph in self._graphs.values():
                graph.close()
            self._graphs = {}
            self._main = self._engine = None  # contexts before the memory they run in
            if self._memory is not None:
                self._memory.release()
                self._memory = None
            for item in [getattr(self, "_stream", None), *getattr(self, "_events", [])]:
                if item is not None:
                    item.destroy()
            self._stream, self._events = None, []
        gpu.close()
        self.gpu = None


def from_bundle(bundle: Bundle | str | Path, *, precision: Precision | str = Precision.FP32, device: str = "cuda",
                graph: str | None = None, cuda_graphs: bool = False, allow_failed: bool = False,
                allow_rejected: bool = False) -> TensorRTBackend:
    """The bundle's engine for ``graph`` at ``precision`` built for this GPU.

    An engine marked failed (it disagreed with the golden outputs, or a DLA engine with no layer on
    the DLA) is refused unless ``allow_failed``, which is for inspecting it; one built from an ONNX
    that calibration rejected unless ``allow_rejected`` (the user's --allow-rejected).
    """
    if not isinstance(bundle, Bundle):
        bundle = Bundle.open(bundle)
    g = bundle.manifest.graph(graph)
    p = Precision.parse(precision)
    trt = import_tensorrt()
    gpu = open_gpu(device_index(device))
    try:
        with gpu.current():
            machine = probe_machine(trt, gpu)
    finally:
        gpu.close()
    candidates = [e for e in bundle.manifest.engines if e.graph == g.name and e.precision == p]
    build = f"vitdeploy build {bundle.path}" + ("" if p is Precision.FP32 else f" --{p.value}")
    if not candidates:
        raise BackendError(f"tensorrt: bundle {bundle.path} has no {p.value} engine for graph {g.name!r}; build one "
                           f"with: {build}")
    wanted = plan_file_name(g.name, p, machine.gpu_slug)
    engine = next((e for e in candidates if e.file == wanted), None)
    if engine is None:
        engine = next((e for e in candidates if e.file.startswith(wanted[: -len(".plan")] + "-dla")), candidates[0])
    check_cuda_graphs(dla_core=engine.dla_core, cuda_graphs=cuda_graphs, engine=engine.file)
    source = next((v for v in g.variants if v.file == engine.onnx_file), None)
    if source is not None and source.status is not Status.GOOD and not allow_rejected:
        raise BackendError(f"tensorrt: engine {engine.file} was built from {source.file}, which calibration marked "
                           f"{source.status.value} ({variant_verdict(source)}); recalibrate and rebuild, or pass "
                           "--allow-rejected to use it anyway")
    if engine.status is Status.FAILED and not allow_failed:
        raise BackendError(f"tensorrt: engine {engine.file} failed its golden check when it was built "
                           f"({'; '.join(_failures(engine))}); rebuild it with: {rebuild_command(bundle.path, engine)}")
    return TensorRTBackend(bundle.file(engine.file), engine=engine, inputs=g.inputs, outputs=g.outputs, device=device,
                           cuda_graphs=cuda_graphs, bundle_path=bundle.path)


def _failures(engine: Engine) -> list[str]:
    cases = engine.golden.get("cases", {})
    found = list(engine.golden.get("failures", []))
    found += [f"{case} {name}: {', '.join(a.get('failures', []))}" for case, per_output in cases.items()
              for name, a in per_output.items() if a.get("failures")]
    found += [f"{case} task: {'; '.join(verdict.get('failures', []))}"
              for case, verdict in engine.golden.get("task", {}).items() if verdict.get("failures")]
    return found[:3] or ["no details recorded"]
