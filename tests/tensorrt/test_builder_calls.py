"""What the builder asks of TensorRT, checked against a recording stand-in of its Python API.

The stand-in has only what ``builder.py`` may use; test_api_surface.py proves those names exist
in TensorRT 10.x and 11.x. The real build is in test_engine_gpu.py (needs a GPU).
"""

from pathlib import Path
from types import SimpleNamespace

import pytest

from vitdeploy.bundle import Precision
from vitdeploy.bundle.manifest import Graph, TensorSpec
from vitdeploy.tensorrt.builder import build_plan
from vitdeploy.tensorrt.errors import BuildError, OnnxParseError
from vitdeploy.tensorrt.profile import DimRange, Profile
from vitdeploy.tensorrt.trtexec import BuilderSettings

GRAPH = Graph(name="model", inputs=[TensorSpec("images", "float32", ["cameras", 3, 64, 96])],
              outputs=[TensorSpec("logits", "float32", ["cameras", 10, 7])])
PROFILE = Profile({"cameras": DimRange(1, 4, 4)})


class FakeTensorRT:
    """Records the calls of one build. ``version`` picks the generation."""

    def __init__(self, version="10.3.0.30", *, parse_errors=(), plan=b"PLAN", dla_cores=0,
                 inputs=("images",), outputs=("logits",), cache_ok=True):
        self.__version__ = version
        self.calls = []
        calls = self.calls
        enum = SimpleNamespace
        self.NetworkDefinitionCreationFlag = enum(STRONGLY_TYPED=1)
        self.MemoryPoolType = enum(WORKSPACE="WORKSPACE")
        self.BuilderFlag = enum(TF32="TF32", GPU_FALLBACK="GPU_FALLBACK", VERSION_COMPATIBLE="VERSION_COMPATIBLE")
        self.DeviceType = enum(DLA="DLA", GPU="GPU")
        self.ProfilingVerbosity = enum(DETAILED="DETAILED")

        def tensors(names):
            return lambda i: SimpleNamespace(name=names[i])

        class Cache:
            def serialize(self):
                return b"CACHE"

        class Config:
            def __setattr__(self, key, value):
                calls.append(("config." + key, value))

            def set_memory_pool_limit(self, pool, size):
                calls.append(("set_memory_pool_limit", pool, size))

            def set_flag(self, flag):
                calls.append(("set_flag", flag))

            def clear_flag(self, flag):
                calls.append(("clear_flag", flag))

            def add_optimization_profile(self, profile):
                calls.append(("add_optimization_profile",))

            def create_timing_cache(self, data):
                calls.append(("create_timing_cache", bytes(data)))
                return Cache()

            def set_timing_cache(self, cache, ignore_mismatch):
                calls.append(("set_timing_cache", ignore_mismatch))
                return cache_ok

            def get_timing_cache(self):
                return Cache()

        class OptProfile:
            def set_shape(self, name, lo, opt, hi):
                calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

        class Builder:
            num_DLA_cores = dla_cores

            def __init__(self, logger):
                pass

            def create_network(self, flags):
                calls.append(("create_network", flags))
                return SimpleNamespace(num_inputs=len(inputs), get_input=tensors(inputs), num_outputs=len(outputs),
                                       get_output=tensors(outputs))

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return OptProfile()

            def build_serialized_network(self, network, config):
                calls.append(("build_serialized_network",))
                return plan

        class Error:
            def __init__(self, node, name, op, code, desc):
                self.values = (node, name, op, code, desc)

            def node(self):
                return self.values[0]

            def node_name(self):
                return self.values[1]

            def node_operator(self):
                return self.values[2]

            def code(self):
                return self.values[3]

            def desc(self):
                return self.values[4]

        class OnnxParser:
            def __init__(self, network, logger):
                self.num_errors = len(parse_errors)

            def parse_from_file(self, path):
                calls.append(("parse_from_file", path))
                return not parse_errors

            def get_error(self, i):
                return Error(*parse_errors[i])

        self.Builder, self.OnnxParser = Builder, OnnxParser


class Logger:
    def __init__(self, errors=()):
        self._errors = list(errors)

    def errors(self):
        return self._errors


def build(trt, precision=Precision.FP16, logger=None, **settings):
    return build_plan(trt, onnx_path=Path("b/model.fp16.onnx"), graph=GRAPH, profile=PROFILE, precision=precision,
                      settings=BuilderSettings(**settings), logger=logger or Logger())


def test_tensorrt_10_network_is_created_strongly_typed():
    trt = FakeTensorRT("10.3.0.30")
    assert bytes(build(trt)) == b"PLAN"
    assert ("create_network", 1 << 1) in trt.calls
    assert ("parse_from_file", "b/model.fp16.onnx") in trt.calls


def test_tensorrt_11_needs_no_flag_it_is_always_strongly_typed():
    trt = FakeTensorRT("11.0.0.114")
    build(trt)
    assert ("create_network", 0) in trt.calls


def test_profile_workspace_and_tf32():
    trt = FakeTensorRT()
    build(trt, Precision.FP32, workspace_gb=2)
    assert ("set_shape", "images", (1, 3, 64, 96), (4, 3, 64, 96), (4, 3, 64, 96)) in trt.calls
    assert ("set_memory_pool_limit", "WORKSPACE", 2 << 30) in trt.calls
    assert ("clear_flag", "TF32") in trt.calls  # FP32 is the exact reference
    trt16 = FakeTensorRT()
    build(trt16, Precision.FP16)
    assert ("clear_flag", "TF32") not in trt16.calls
    assert not any(c[0] == "set_flag" for c in trt16.calls)  # no precision flags: precision is in the ONNX


def test_optimisation_level_version_compatibility_and_dla():
    trt = FakeTensorRT(dla_cores=2)
    build(trt, builder_opt_level=5, version_compatible=True, dla_core=1)
    for call in [("config.builder_optimization_level", 5), ("set_flag", "VERSION_COMPATIBLE"),
                 ("config.default_device_type", "DLA"), ("config.DLA_core", 1), ("set_flag", "GPU_FALLBACK"),
                 ("config.profiling_verbosity", "DETAILED")]:  # the engine inspector then names DLA layers
        assert call in trt.calls
    with pytest.raises(BuildError, match=r"--dla-core 2 asked for, this GPU has 2 DLA core\(s\) \(0..1\)"):
        build(FakeTensorRT(dla_cores=2), dla_core=2)
    with pytest.raises(BuildError, match=r"this GPU has no DLA .*Thor.*\(drop --dla-core\)"):
        build(FakeTensorRT(), dla_core=0)


def test_timing_cache_is_loaded_and_saved_atomically(tmp_path):
    cache = tmp_path / "caches" / "orin.cache"
    trt = FakeTensorRT()
    build(trt, timing_cache=cache)
    assert ("create_timing_cache", b"") in trt.calls and ("set_timing_cache", False) in trt.calls
    assert cache.read_bytes() == b"CACHE"
    assert [p.name for p in cache.parent.iterdir()] == ["orin.cache"]  # no temporary left behind
    trt2 = FakeTensorRT()
    build(trt2, timing_cache=cache)
    assert ("create_timing_cache", b"CACHE") in trt2.calls
    with pytest.raises(BuildError, match="another TensorRT version or GPU"):
        build(FakeTensorRT(cache_ok=False), timing_cache=cache)


def test_parser_errors_are_reported_node_by_node():
    errors = [(12, "/blocks.0/attn/Reshape", "Reshape", "ErrorCode.UNSUPPORTED_NODE", "shape tensor must be INT64"),
              (-1, "", "", "ErrorCode.INVALID_GRAPH", "graph has no outputs")]
    with pytest.raises(OnnxParseError) as info:
        build(FakeTensorRT(parse_errors=errors))
    message = str(info.value)
    assert "TensorRT cannot parse model.fp16.onnx (2 error(s))" in message
    assert "node 12 '/blocks.0/attn/Reshape' (Reshape): shape tensor must be INT64 [UNSUPPORTED_NODE]" in message
    assert "the graph: graph has no outputs [INVALID_GRAPH]" in message
    assert [i.node for i in info.value.issues] == [12, -1]


def test_a_failed_build_quotes_tensorrt():
    with pytest.raises(BuildError, match="could not build model.fp16.onnx at fp16: out of workspace"):
        build(FakeTensorRT(plan=None), logger=Logger(["out of workspace"]))


def test_onnx_and_manifest_must_agree_on_tensors():
    with pytest.raises(BuildError, match=r"has inputs \['pixels'\].*re-export"):
        build(FakeTensorRT(inputs=("pixels",)))
