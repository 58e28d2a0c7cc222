"""The calls into TensorRT that turn one ONNX file into a serialized plan.

Every TensorRT name used here is listed in ``vitdeploy.tensorrt.compat.TRT_NAMES`` and checked
against the 10.x and 11.x APIs by the API-surface test. ``trt`` is passed in (imported lazily by
the caller), so importing this module needs no TensorRT.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from vitdeploy.bundle import atomic_path
from vitdeploy.bundle.manifest import Graph, Precision
from vitdeploy.tensorrt.compat import network_flags
from vitdeploy.tensorrt.dla import check_dla_cores
from vitdeploy.tensorrt.errors import BuildError, OnnxParseError, ParserIssue
from vitdeploy.tensorrt.profile import Profile
from vitdeploy.tensorrt.trtexec import BuilderSettings


def parser_issues(parser: Any) -> list[ParserIssue]:
    """Each error TensorRT's ONNX parser recorded, with its node index, name and operator."""
    issues = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        issues.append(ParserIssue(node=int(err.node()), node_name=str(err.node_name()),
                                  operator=str(err.node_operator()), code=str(err.code()).rsplit(".", 1)[-1],
                                  message=str(err.desc())))
    return issues


def _tensor_names(count: int, get: Any) -> list[str]:
    return [get(i).name for i in range(count)]


def _check_io(network: Any, graph: Graph, onnx_path: Path) -> None:
    have_in = _tensor_names(network.num_inputs, network.get_input)
    have_out = _tensor_names(network.num_outputs, network.get_output)
    want_in = [s.name for s in graph.inputs]
    want_out = [s.name for s in graph.outputs]
    if sorted(have_in) != sorted(want_in) or sorted(have_out) != sorted(want_out):
        raise BuildError(f"{onnx_path.name} has inputs {have_in} and outputs {have_out}, but the manifest lists "
                         f"{want_in} and {want_out} for graph {graph.name!r}; re-export the bundle")


def _load_timing_cache(config: Any, path: Path | None) -> None:
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    # ignore_mismatch=False: a cache from another TensorRT or GPU would mislead the tactic choice
    if cache is None or not config.set_timing_cache(cache, False):
        raise BuildError(f"timing cache {path} was made by another TensorRT version or GPU; delete it or give "
                         f"another --timing-cache")


def _save_timing_cache(config: Any, path: Path) -> None:
    serialized = config.get_timing_cache().serialize()
    with atomic_path(path) as tmp:
        tmp.write_bytes(memoryview(serialized))


def build_plan(trt: ModuleType, *, onnx_path: Path, graph: Graph, profile: Profile, precision: Precision,
               settings: BuilderSettings, logger: Any, gpu_name: str = "this GPU") -> memoryview:
    """Parse ``onnx_path`` into a strongly typed network and build a plan with one optimisation
    profile. Returns the serialized plan; the timing cache (if any) is loaded before and saved
    after. ``logger`` is a ``compat.recording_logger``, quoted when TensorRT fails."""
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    # parse_from_file (not parse) so that weights stored beside a large ONNX are found
    if not parser.parse_from_file(str(onnx_path)):
        raise OnnxParseError(onnx_path.name, parser_issues(parser))
    _check_io(network, graph, onnx_path)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    if precision is Precision.FP32:
        # TF32 rounds FP32 matmul inputs to 10 mantissa bits; the FP32 engine is the exact reference
        config.clear_flag(trt.BuilderFlag.TF32)
    if settings.builder_opt_level is not None:
        config.builder_optimization_level = settings.builder_opt_level
    if settings.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if settings.dla_core is not None:
        check_dla_cores(dla_core=settings.dla_core, available=int(builder.num_DLA_cores), gpu_name=gpu_name)
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = settings.dla_core
        # layers DLA cannot run (a ViT's LayerNorm, Softmax, GELU ...) go to the GPU; how many stayed
        # on the DLA is read back with the engine inspector, which needs detailed layer information
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED

    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.input_shapes(graph).items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)

    if settings.timing_cache is not None:
        _load_timing_cache(config, settings.timing_cache)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        said = "; ".join(logger.errors()[-5:]) or "no error was logged"
        raise BuildError(f"TensorRT could not build {onnx_path.name} at {precision.value}: {said}")
    if settings.timing_cache is not None:
        _save_timing_cache(config, settings.timing_cache)
    return memoryview(plan)
