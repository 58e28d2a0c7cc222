"""A stand-in for TensorRT, so the engine builder's and the tensorrt backend's own logic runs in CI
without a GPU (the CUDA layers' stand-ins are in cuda_fakes.py). It offers only names the code
uses; test_api_surface.py proves those exist in the recorded TensorRT 10.3/10.16/11.0/11.4 APIs.
The real thing is exercised by the tests marked ``tensorrt``.

The fake "plan" is JSON: the ONNX file it was built from (run with ONNX Runtime when executed, so
a fake engine computes what the real one should) or ``"demo"`` (logits[n, j] = images[n].sum() *
(j + 1)), the profile of each input, and the layers the engine inspector reports. Data moves
through fake device memory, so copies, shapes, tensor addresses and the activation memory given
to each context all have to be right for the numbers to come out.
"""

from __future__ import annotations

import json
import sys
from types import ModuleType, SimpleNamespace

import numpy as np
from cuda_fakes import FakeCudart, FakeDeviceMemory, FakePycuda, install_cudart, install_pycuda

__all__ = ["FakeCudart", "FakePycuda", "FakeTensorRT", "demo_logits", "demo_plan", "install"]

#: Activation memory the fake engine needs per camera, bytes.
ACTIVATION_PER_CAMERA = 1 << 20
#: What TensorRT's builder logs when no layer stays on the DLA.
NOTHING_ON_DLA = "setDefaultDeviceType was called but no layer in the network can run on DLA."


def demo_plan(max_cameras=3, *, dtypes=None) -> bytes:
    return json.dumps({"demo": True, "inputs": {"images": [[1, 3, 4, 4], [max_cameras, 3, 4, 4],
                                                           [max_cameras, 3, 4, 4]]},
                       "outputs": ["logits"], "dtypes": dtypes or {}}).encode()


def demo_logits(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).sum(1, keepdims=True) * np.arange(1, 6, dtype=np.float32)


class FakeTensorRT(ModuleType):
    """tensorrt: Builder + OnnxParser make a JSON plan; Runtime runs it. ``corrupt`` is added to
    every output of an ONNX-backed engine (an engine that got the numbers wrong). ``dla_runs``:
    whether layers stay on the DLA of a DLA build (else the builder says none can, as TensorRT does)."""

    def __init__(self, cuda: FakeDeviceMemory, version="10.3.0.30", *, corrupt=0.0, dla_cores=0, dla_runs=True):
        super().__init__("tensorrt")
        self.__version__ = version
        self.deserialized: list[bytes] = []
        self.calls: list[tuple] = []
        self.contexts: list = []
        fake = self
        self.TensorIOMode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
        self.NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=1)
        self.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
        self.BuilderFlag = SimpleNamespace(TF32="TF32", GPU_FALLBACK="GPU_FALLBACK",
                                           VERSION_COMPATIBLE="VERSION_COMPATIBLE")
        self.DeviceType = SimpleNamespace(DLA="DLA", GPU="GPU")
        self.ProfilingVerbosity = SimpleNamespace(DETAILED="DETAILED", LAYER_NAMES_ONLY="LAYER_NAMES_ONLY")
        self.ExecutionContextAllocationStrategy = SimpleNamespace(STATIC="STATIC", USER_MANAGED="USER_MANAGED")
        self.LayerInformationFormat = SimpleNamespace(JSON="JSON", ONELINE="ONELINE")

        class ILogger:
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (f"Severity.{s}" for s in
                                                             ("INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"))

            def __init__(self):
                pass

        # ---- building ----
        class Network:
            def __init__(self):
                self.inputs, self.outputs = [], []

            @property
            def num_inputs(self):
                return len(self.inputs)

            @property
            def num_outputs(self):
                return len(self.outputs)

            def get_input(self, i):
                return SimpleNamespace(name=self.inputs[i])

            def get_output(self, i):
                return SimpleNamespace(name=self.outputs[i])

        class OnnxParser:
            num_errors = 0

            def __init__(self, network, logger):
                self.network = network

            def parse_from_file(self, path):
                from vitdeploy.runtime.backends.onnxruntime import cpu_session

                session = cpu_session(path)
                self.network.onnx = path
                self.network.inputs = [i.name for i in session.get_inputs()]
                self.network.outputs = [o.name for o in session.get_outputs()]
                return True

        class Cache:
            def serialize(self):
                return b"CACHE"

        class Config:
            def __init__(self):
                self.profile = None
                self.default_device_type, self.DLA_core, self.profiling_verbosity = "GPU", -1, "LAYER_NAMES_ONLY"

            def set_memory_pool_limit(self, pool, size):
                fake.calls.append(("set_memory_pool_limit", pool, size))

            def set_flag(self, flag):
                fake.calls.append(("set_flag", flag))

            def clear_flag(self, flag):
                fake.calls.append(("clear_flag", flag))

            def add_optimization_profile(self, profile):
                self.profile = profile

            def create_timing_cache(self, data):
                return Cache()

            def set_timing_cache(self, cache, ignore_mismatch):
                return True

            def get_timing_cache(self):
                return Cache()

        class OptProfile:
            def __init__(self):
                self.shapes = {}

            def set_shape(self, name, lo, opt, hi):
                self.shapes[name] = [list(lo), list(opt), list(hi)]

        class Builder:
            num_DLA_cores = dla_cores

            def __init__(self, logger):
                self.logger = logger

            def create_network(self, flags):
                fake.calls.append(("create_network", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return OptProfile()

            def build_serialized_network(self, network, config):
                layers = [{"Name": "{ForeignNode[/encoder/blocks.0/attn/MatMul.../head/Sigmoid]}", "LayerType": "Myelin"}]
                if getattr(config, "default_device_type", None) == "DLA":
                    fake.calls.append(("dla_build", config.DLA_core, config.profiling_verbosity))
                    if dla_runs:
                        layers = [{"Name": "images to nvm", "LayerType": "Reformat"},
                                  {"Name": "{ForeignNode[/patch_embed/Conv]}", "LayerType": "DLA"},
                                  {"Name": "images from nvm", "LayerType": "Reformat"}, *layers]
                    else:
                        self.logger.log(ILogger.WARNING, NOTHING_ON_DLA)
                return json.dumps({"onnx": network.onnx, "inputs": config.profile.shapes,
                                   "outputs": network.outputs, "layers": layers}).encode()

        # ---- running ----
        class Context:
            def __init__(self, engine, strategy):
                self.engine, self.strategy, self.shapes, self.addresses = engine, strategy, {}, {}
                self.device_memory = None

            def set_input_shape(self, name, shape):
                lo, _opt, hi = self.engine.plan["inputs"][name]
                if not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
                    return False
                self.shapes[name] = tuple(shape)
                return True

            def get_tensor_shape(self, name):
                if name in self.shapes:
                    return self.shapes[name]
                return self._outputs(self._zeros())[name].shape

            def set_tensor_address(self, name, address):
                self.addresses[name] = address
                return True

            def set_device_memory(self, address, size):
                self.device_memory = (address, size)

            def update_device_memory_size_for_shapes(self):
                return ACTIVATION_PER_CAMERA * next(iter(self.shapes.values()))[0]

            def _zeros(self):
                return {n: np.zeros(s, np.float32) for n, s in self.shapes.items()}

            def _outputs(self, feeds):
                if self.engine.plan.get("demo"):
                    return {"logits": demo_logits(feeds["images"])}
                from vitdeploy.runtime.backends.onnxruntime import run_on_cpu

                out = run_on_cpu(self.engine.plan["onnx"], feeds)
                return {k: (v + np.float32(corrupt)).astype(v.dtype) for k, v in out.items()}

            def execute_async_v3(self, stream):
                if self.strategy == "USER_MANAGED":  # TensorRT needs the memory before it runs
                    address, size = self.device_memory
                    if address not in cuda.memory or size < self.update_device_memory_size_for_shapes():
                        return False
                feeds = {n: cuda.read(self.addresses[n], s, np.float32) for n, s in self.shapes.items()}
                for name, value in self._outputs(feeds).items():
                    cuda.write(self.addresses[name], value)
                return True

        class Inspector:
            def __init__(self, engine):
                self.engine = engine

            def get_engine_information(self, fmt):
                assert fmt == "JSON"
                return json.dumps({"Layers": self.engine.plan.get("layers", []), "Bindings": self.engine.names})

        class Engine:
            def __init__(self, plan):
                self.plan = plan
                self.names = [*plan["inputs"], *plan["outputs"]]

            @property
            def num_io_tensors(self):
                return len(self.names)

            @property
            def device_memory_size_v2(self):
                return ACTIVATION_PER_CAMERA * max(hi[0] for _lo, _opt, hi in self.plan["inputs"].values())

            def get_tensor_name(self, i):
                return self.names[i]

            def get_tensor_mode(self, name):
                return "INPUT" if name in self.plan["inputs"] else "OUTPUT"

            def get_tensor_dtype(self, name):
                return self.plan.get("dtypes", {}).get(name, np.float32)

            def get_tensor_profile_shape(self, name, profile):
                return [tuple(s) for s in self.plan["inputs"][name]]

            def create_execution_context(self, strategy="STATIC"):
                context = Context(self, strategy)
                fake.contexts.append(context)
                return context

            def create_engine_inspector(self):
                return Inspector(self)

        class Runtime:
            def __init__(self, logger):
                self.engine_host_code_allowed = False

            def deserialize_cuda_engine(self, data):
                fake.deserialized.append(bytes(data))
                return Engine(json.loads(bytes(data)))

        self.ILogger, self.Builder, self.OnnxParser, self.Runtime = ILogger, Builder, OnnxParser, Runtime

    @staticmethod
    def nptype(dtype):
        if isinstance(dtype, str):  # DataType.BF16, FP8, FP4, INT4: no numpy type, a bare TypeError
            raise TypeError(f"Could not resolve TensorRT datatype to an equivalent numpy datatype. DataType.{dtype}")
        return dtype


def install(monkeypatch, trt: FakeTensorRT, cuda: FakePycuda | FakeCudart) -> None:
    """Make ``import tensorrt`` and the CUDA layer (pycuda or cuda-python, by the fake given) find
    the stand-ins."""
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.delenv("VITDEPLOY_CUDA_LAYER", raising=False)
    if isinstance(cuda, FakeCudart):
        install_cudart(monkeypatch, cuda)
    else:
        install_pycuda(monkeypatch, cuda)
