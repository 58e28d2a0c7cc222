"""Stand-ins for TensorRT and pycuda, so the engine builder's and the tensorrt backend's own logic
runs in CI without a GPU. They offer only names the code uses; test_api_surface.py proves those
exist in TensorRT 10.x and 11.x. The real thing is exercised by the tests marked ``tensorrt``.

The fake "plan" is JSON: the ONNX file it was built from (run with ONNX Runtime when executed, so
a fake engine computes what the real one should) or ``"demo"`` (logits[n, j] = images[n].sum() *
(j + 1)), and the profile of each input. Data moves through fake device memory, so copies,
shapes and tensor addresses all have to be right for the numbers to come out.
"""

from __future__ import annotations

import json
import sys
import time
from types import ModuleType, SimpleNamespace

import numpy as np


class FakeCuda:
    """pycuda.driver with one GPU ("Orin", sm 8.7, CUDA 12.6)."""

    class Error(Exception):
        pass

    def __init__(self, gpu_name="Orin", compute_capability=(8, 7)):
        self.memory: dict[int, np.ndarray] = {}
        fake = self

        class Context:
            def push(self):
                pass

            def detach(self):
                pass

            @staticmethod
            def pop():
                pass

        class Device:
            def __init__(self, index):
                self.index = index

            @staticmethod
            def count():
                return 1

            def name(self):
                return gpu_name

            def compute_capability(self):
                return compute_capability

            def retain_primary_context(self):
                return Context()

        class Allocation:
            next_address = 0x1000

            def __init__(self, nbytes):
                self.address = Allocation.next_address
                Allocation.next_address += 0x100000 + nbytes
                fake.memory[self.address] = np.zeros(nbytes, np.uint8)

            def __int__(self):
                return self.address

            def free(self):
                del fake.memory[self.address]

        class Stream:
            handle = 77

            def synchronize(self):
                pass

        class Event:
            def record(self, stream):
                self.at = time.perf_counter()

            def time_till(self, other):
                return (other.at - self.at) * 1e3

        self.Context, self.Device, self.Stream, self.Event, self.mem_alloc = Context, Device, Stream, Event, Allocation

    def init(self):
        pass

    def get_version(self):
        return (12, 6, 0)

    def pagelocked_empty(self, count, dtype):
        return np.empty(count, dtype)

    def memcpy_htod_async(self, dev, host, stream):
        self.memory[int(dev)][: host.nbytes] = np.frombuffer(host.tobytes(), np.uint8)

    def memcpy_dtoh_async(self, host, dev, stream):
        host[...] = np.frombuffer(self.memory[int(dev)][: host.nbytes].tobytes(), host.dtype).reshape(host.shape)

    def read(self, address: int, shape, dtype) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(self.memory[address][:n].tobytes(), dtype).reshape(shape)

    def write(self, address: int, array: np.ndarray) -> None:
        self.memory[address][: array.nbytes] = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)


def demo_plan(max_cameras=3) -> bytes:
    return json.dumps({"demo": True, "inputs": {"images": [[1, 3, 4, 4], [max_cameras, 3, 4, 4],
                                                           [max_cameras, 3, 4, 4]]},
                       "outputs": ["logits"]}).encode()


def demo_logits(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).sum(1, keepdims=True) * np.arange(1, 6, dtype=np.float32)


class FakeTensorRT(ModuleType):
    """tensorrt: Builder + OnnxParser make a JSON plan; Runtime runs it. ``corrupt`` is added to
    every output of an ONNX-backed engine (an engine that got the numbers wrong)."""

    def __init__(self, cuda: FakeCuda, version="10.3.0.30", *, corrupt=0.0, dla_cores=0):
        super().__init__("tensorrt")
        self.__version__ = version
        self.deserialized: list[bytes] = []
        self.calls: list[tuple] = []
        fake = self
        self.TensorIOMode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
        self.NetworkDefinitionCreationFlag = SimpleNamespace(STRONGLY_TYPED=1)
        self.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
        self.BuilderFlag = SimpleNamespace(TF32="TF32", GPU_FALLBACK="GPU_FALLBACK",
                                           VERSION_COMPATIBLE="VERSION_COMPATIBLE")
        self.DeviceType = SimpleNamespace(DLA="DLA", GPU="GPU")

        class ILogger:
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

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
                pass

            def create_network(self, flags):
                fake.calls.append(("create_network", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return OptProfile()

            def build_serialized_network(self, network, config):
                return json.dumps({"onnx": network.onnx, "inputs": config.profile.shapes,
                                   "outputs": network.outputs}).encode()

        # ---- running ----
        class Context:
            def __init__(self, engine):
                self.engine, self.shapes, self.addresses = engine, {}, {}

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

            def _zeros(self):
                return {n: np.zeros(s, np.float32) for n, s in self.shapes.items()}

            def _outputs(self, feeds):
                if self.engine.plan.get("demo"):
                    return {"logits": demo_logits(feeds["images"])}
                from vitdeploy.runtime.backends.onnxruntime import run_on_cpu

                out = run_on_cpu(self.engine.plan["onnx"], feeds)
                return {k: (v + np.float32(corrupt)).astype(v.dtype) for k, v in out.items()}

            def execute_async_v3(self, stream):
                feeds = {n: cuda.read(self.addresses[n], s, np.float32) for n, s in self.shapes.items()}
                for name, value in self._outputs(feeds).items():
                    cuda.write(self.addresses[name], value)
                return True

        class Engine:
            def __init__(self, plan):
                self.plan = plan
                self.names = [*plan["inputs"], *plan["outputs"]]

            @property
            def num_io_tensors(self):
                return len(self.names)

            def get_tensor_name(self, i):
                return self.names[i]

            def get_tensor_mode(self, name):
                return "INPUT" if name in self.plan["inputs"] else "OUTPUT"

            def get_tensor_dtype(self, name):
                return np.float32

            def get_tensor_profile_shape(self, name, profile):
                return [tuple(s) for s in self.plan["inputs"][name]]

            def create_execution_context(self):
                return Context(self)

        class Runtime:
            def __init__(self, logger):
                self.engine_host_code_allowed = False

            def deserialize_cuda_engine(self, data):
                fake.deserialized.append(bytes(data))
                return Engine(json.loads(bytes(data)))

        self.ILogger, self.Builder, self.OnnxParser, self.Runtime = ILogger, Builder, OnnxParser, Runtime

    @staticmethod
    def nptype(dtype):
        return dtype


def install(monkeypatch, trt: FakeTensorRT, cuda: FakeCuda) -> None:
    """Make ``import tensorrt`` and ``import pycuda.driver`` find the stand-ins."""
    pycuda = ModuleType("pycuda")
    pycuda.driver = cuda
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
