"""TensorRT and pycuda as vitdeploy uses them, for TensorRT 10.x and 11.x alike.

Both are optional (DESIGN.md decision 3): they are imported here, lazily, by the engine builder
and the tensorrt backend only, and a missing one is a ``MissingDependencyError`` naming the
install. Nothing in vitdeploy imports ``tensorrt`` or ``pycuda`` at module level.

``TRT_NAMES`` lists every TensorRT class, enum member, method and attribute that the builder
(``vitdeploy.tensorrt.builder``) and the engine runner (``vitdeploy.tensorrt.runner``)
touch; ``TRT_NAMES_BY_MAJOR`` the few used only behind a version check. The API-surface test
(tests/tensorrt/test_api_surface.py) checks them against the recorded Python APIs of
TensorRT 10.x and 11.x, so a name that one generation lacks fails in CI, not on the car.
"""

from __future__ import annotations

from types import ModuleType

from vitdeploy.errors import BackendError, MissingDependencyError
from vitdeploy.tensorrt.provenance import Machine

INSTALL_HINT = ('pip install "vitdeploy[tensorrt]" (on Jetson or DRIVE, the TensorRT and pycuda packages of '
                'JetPack/DriveOS instead: apt install python3-libnvinfer, then pip install pycuda)')

#: TensorRT generations whose Python API the builder and backend are written against.
SUPPORTED_MAJORS = (10, 11)

#: Every TensorRT name the builder and backend use, valid in every supported generation.
#: "Class.member" for members (enum values included), a bare name for a module attribute.
TRT_NAMES: tuple[str, ...] = (
    "__version__",
    "nptype",
    # logging
    "ILogger", "ILogger.log", "ILogger.Severity", "ILogger.INTERNAL_ERROR", "ILogger.ERROR", "ILogger.WARNING",
    "ILogger.INFO", "ILogger.VERBOSE",
    # building
    "Builder", "Builder.create_network", "Builder.create_builder_config", "Builder.create_optimization_profile",
    "Builder.build_serialized_network", "Builder.num_DLA_cores",
    "INetworkDefinition.num_inputs", "INetworkDefinition.get_input", "INetworkDefinition.num_outputs",
    "INetworkDefinition.get_output",
    "ITensor.name", "ITensor.shape",
    "OnnxParser", "OnnxParser.parse_from_file", "OnnxParser.num_errors", "OnnxParser.get_error",
    "ParserError.code", "ParserError.desc", "ParserError.node", "ParserError.node_name", "ParserError.node_operator",
    "IOptimizationProfile.set_shape",
    "IBuilderConfig.add_optimization_profile", "IBuilderConfig.set_memory_pool_limit",
    "IBuilderConfig.builder_optimization_level", "IBuilderConfig.set_flag", "IBuilderConfig.clear_flag",
    "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache", "IBuilderConfig.get_timing_cache",
    "IBuilderConfig.default_device_type", "IBuilderConfig.DLA_core",
    "ITimingCache.serialize",
    "MemoryPoolType.WORKSPACE",
    "BuilderFlag.TF32", "BuilderFlag.GPU_FALLBACK", "BuilderFlag.VERSION_COMPATIBLE",
    "DeviceType.DLA",
    # running
    "Runtime", "Runtime.deserialize_cuda_engine", "Runtime.engine_host_code_allowed", "Runtime.DLA_core",
    "ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name", "ICudaEngine.get_tensor_mode",
    "ICudaEngine.get_tensor_dtype", "ICudaEngine.get_tensor_profile_shape", "ICudaEngine.create_execution_context",
    "TensorIOMode.INPUT", "TensorIOMode.OUTPUT",
    "IExecutionContext.set_input_shape", "IExecutionContext.get_tensor_shape",
    "IExecutionContext.set_tensor_address", "IExecutionContext.execute_async_v3",
)

#: Names used only where the running TensorRT has the given major version.
TRT_NAMES_BY_MAJOR: dict[int, tuple[str, ...]] = {
    # 10.x builds weakly typed networks unless asked; 11.x has only strongly typed ones and
    # deprecates the flag (it is ignored there), so it is set on 10.x only.
    10: ("NetworkDefinitionCreationFlag.STRONGLY_TYPED",),
}


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or ``MissingDependencyError`` naming the install."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingDependencyError(f"TensorRT (Python package `tensorrt`: {exc})", install=INSTALL_HINT) from exc
    major = tensorrt_major(trt.__version__)
    if major not in SUPPORTED_MAJORS:
        supported = " and ".join(f"{m}.x" for m in SUPPORTED_MAJORS)
        raise MissingDependencyError(f"a supported TensorRT (found {trt.__version__}; vitdeploy supports {supported})",
                                     install=INSTALL_HINT)
    return trt


def tensorrt_major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise BackendError(f"cannot read the TensorRT version {version!r}; expected e.g. 10.3.0") from None


def network_flags(trt: ModuleType) -> int:
    """``create_network`` flags for a strongly typed network (DESIGN.md decision 1): precision
    comes from the ONNX graph's own types, never from builder flags."""
    if tensorrt_major(trt.__version__) == 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


def import_cuda() -> ModuleType:
    """``pycuda.driver``, initialised, with at least one GPU; else ``MissingDependencyError``."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise MissingDependencyError(f"pycuda (Python package `pycuda`: {exc})", install=INSTALL_HINT) from exc
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        raise MissingDependencyError(f"a CUDA GPU and driver (cuInit failed: {exc})", install=INSTALL_HINT) from exc
    if count == 0:
        raise MissingDependencyError("a CUDA GPU (the driver sees none)", install=INSTALL_HINT)
    return cuda


def device_index(device: str | int) -> int:
    """'cuda' -> 0, 'cuda:1' -> 1, 2 -> 2."""
    if isinstance(device, int):
        return device
    name, _, index = device.strip().lower().partition(":")
    if name not in ("cuda", "gpu") or (index and not index.isdigit()):
        raise BackendError(f"tensorrt: device {device!r} is not a GPU; use cuda or cuda:N")
    return int(index or 0)


def open_device(cuda: ModuleType, index: int):
    """The device's primary CUDA context, pushed (the one TensorRT uses too); pop it when done."""
    count = cuda.Device.count()
    if not 0 <= index < count:
        raise BackendError(f"tensorrt: requested GPU {index}, available: {list(range(count))}")
    context = cuda.Device(index).retain_primary_context()
    context.push()
    return context


def probe_machine(trt: ModuleType, cuda: ModuleType, index: int) -> Machine:
    """TensorRT, CUDA and GPU ``index`` as a provenance ``Machine``."""
    device = cuda.Device(index)
    major, minor = device.compute_capability()
    cuda_major, cuda_minor = cuda.get_version()[:2]  # the CUDA toolkit pycuda (and so TensorRT) runs on
    return Machine(tensorrt_version=trt.__version__, cuda_version=f"{cuda_major}.{cuda_minor}",
                   gpu_name=device.name(), compute_capability=f"{major}.{minor}")


def recording_logger(trt: ModuleType, *, min_severity: str = "WARNING"):
    """A TensorRT logger that keeps what TensorRT said (errors and warnings), so a failed build or
    deserialization can quote it in the error message instead of leaving it on stderr."""
    severities = [trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR, trt.ILogger.WARNING, trt.ILogger.INFO,
                  trt.ILogger.VERBOSE]
    keep = severities[: ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"].index(min_severity) + 1]

    class RecordingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []

        def log(self, severity, msg):
            if severity in keep:
                self.messages.append((str(severity).rsplit(".", 1)[-1], msg))

        def errors(self) -> list[str]:
            return [m for s, m in self.messages if s in ("INTERNAL_ERROR", "ERROR")]

    return RecordingLogger()
