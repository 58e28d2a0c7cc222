"""TensorRT as vitdeploy uses it, for TensorRT 10.x and 11.x alike.

TensorRT and the CUDA layer (``vitdeploy.tensorrt.cuda``: pycuda or cuda-python) are optional
(DESIGN.md decision 3): they are imported lazily, by the engine builder and the tensorrt backend
only, and a missing one is a ``MissingDependencyError`` naming the install. Nothing in vitdeploy
imports ``tensorrt``, ``pycuda`` or ``cuda`` at module level.

``TRT_NAMES`` lists every TensorRT class, enum member, method and attribute that the builder
(``vitdeploy.tensorrt.builder``), the engine runner (``vitdeploy.tensorrt.runner``) and the
inspector (``vitdeploy.tensorrt.inspect``) touch; ``TRT_NAMES_BY_MAJOR`` the few used only behind a
version check. The API-surface test (tests/tensorrt/test_api_surface.py) checks them against the
recorded Python APIs of TensorRT 10.3, 10.16, 11.0 and 11.4, so a name that one generation lacks
fails in CI, not on the car.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from vitdeploy.errors import BackendError, MissingDependencyError
from vitdeploy.tensorrt.cuda import INSTALL_HINT, CudaLayer
from vitdeploy.tensorrt.provenance import Machine

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
    "IBuilderConfig.default_device_type", "IBuilderConfig.DLA_core", "IBuilderConfig.profiling_verbosity",
    "ITimingCache.serialize",
    "MemoryPoolType.WORKSPACE",
    "BuilderFlag.TF32", "BuilderFlag.GPU_FALLBACK", "BuilderFlag.VERSION_COMPATIBLE",
    "DeviceType.DLA", "ProfilingVerbosity.DETAILED",
    # running
    "Runtime", "Runtime.deserialize_cuda_engine", "Runtime.engine_host_code_allowed", "Runtime.DLA_core",
    "ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name", "ICudaEngine.get_tensor_mode",
    "ICudaEngine.get_tensor_dtype", "ICudaEngine.get_tensor_profile_shape", "ICudaEngine.create_execution_context",
    "ICudaEngine.device_memory_size_v2", "ICudaEngine.create_engine_inspector",
    "ExecutionContextAllocationStrategy.USER_MANAGED",
    "TensorIOMode.INPUT", "TensorIOMode.OUTPUT",
    "IExecutionContext.set_input_shape", "IExecutionContext.get_tensor_shape",
    "IExecutionContext.set_tensor_address", "IExecutionContext.execute_async_v3",
    "IExecutionContext.set_device_memory", "IExecutionContext.update_device_memory_size_for_shapes",
    # inspecting
    "EngineInspector.get_engine_information", "LayerInformationFormat.JSON",
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
    if getattr(trt, "__version__", None) is None:
        # a folder named tensorrt on the path (a namespace package, e.g. a test folder), not TensorRT
        where = list(getattr(trt, "__path__", [])) or getattr(trt, "__file__", "?")
        raise MissingDependencyError(f"TensorRT (the `tensorrt` Python finds, {where}, is not TensorRT's package)",
                                     install=INSTALL_HINT)
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


def device_index(device: str | int) -> int:
    """'cuda' -> 0, 'cuda:1' -> 1, 2 -> 2."""
    if isinstance(device, int):
        return device
    name, _, index = device.strip().lower().partition(":")
    if name not in ("cuda", "gpu") or (index and not index.isdigit()):
        raise BackendError(f"tensorrt: device {device!r} is not a GPU; use cuda or cuda:N")
    return int(index or 0)


def probe_machine(trt: ModuleType, gpu: CudaLayer) -> Machine:
    """TensorRT, the CUDA runtime and the GPU as a provenance ``Machine``. The CUDA version is
    the runtime this process runs TensorRT on (the CUDA layer asks ``cudaRuntimeGetVersion``), not
    the CUDA a Python package was compiled against."""
    info = gpu.info
    return Machine(tensorrt_version=trt.__version__, cuda_version=gpu.runtime_version(), gpu_name=info.name,
                   compute_capability=info.compute_capability, sm_count=info.sm_count,
                   memory_mib=info.total_memory // (1 << 20))


def numpy_dtype(trt: ModuleType, dtype: Any, *, tensor: str, plan: str) -> np.dtype:
    """The numpy dtype of a TensorRT tensor type. BF16, FP8, FP4 and INT4 have none (``trt.nptype``
    raises a bare TypeError for them): a ``BackendError`` naming the tensor and its type instead."""
    try:
        return np.dtype(trt.nptype(dtype))
    except TypeError:
        kind = str(dtype).rsplit(".", 1)[-1]
        raise BackendError(f"tensorrt: tensor {tensor!r} of {plan} is {kind}, which numpy (and so vitdeploy's "
                           f"host buffers) cannot hold; export the graph with FP32 or FP16 inputs and outputs "
                           f"(keep {kind} inside the network)") from None


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

        def warnings(self) -> list[str]:
            return [m for s, m in self.messages if s == "WARNING"]

    return RecordingLogger()
