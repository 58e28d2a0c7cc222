"""Stand-ins for the two CUDA layers vitdeploy runs TensorRT on: ``pycuda.driver`` (``FakePycuda``)
and NVIDIA's ``cuda.bindings.runtime`` (``FakeCudart``), with the calls and signatures
``vitdeploy.tensorrt.cuda`` uses (pycuda's documented driver API; cuda-python's ``(err, *result)``
convention, as TensorRT's ``samples/python/common_runtime.py`` calls it).

Both keep "device memory" in ``FakeDeviceMemory``: numpy byte arrays by address, which the fake
TensorRT engine reads its inputs from and writes its outputs to, so copies, addresses and mapped
(zero-copy) host buffers all have to be right for the numbers to come out. Mapped host memory is
registered under its device address as a view of the very host bytes, as on an integrated GPU.
"""

from __future__ import annotations

import ctypes
import sys
import time
from types import ModuleType, SimpleNamespace

import numpy as np

#: A Jetson AGX Orin 64 GB and an Orin NX 16 GB: the same name and compute capability to CUDA.
AGX_ORIN = {"gpu_name": "Orin", "compute_capability": (8, 7), "sm_count": 16, "total_memory": 61 << 30,
            "integrated": True}
ORIN_NX = {"gpu_name": "Orin", "compute_capability": (8, 7), "sm_count": 8, "total_memory": 15 << 30,
           "integrated": True}


class FakeDeviceMemory:
    """Device memory by address: ``read``/``write`` are what the fake engine uses."""

    def __init__(self):
        self.memory: dict[int, np.ndarray] = {}
        self._next = 0x1000

    def new_address(self, nbytes: int) -> int:
        address = self._next
        self._next += 0x100000 + nbytes
        return address

    def read(self, address: int, shape, dtype) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(self.memory[address][:n].tobytes(), dtype).reshape(shape)

    def write(self, address: int, array: np.ndarray) -> None:
        self.memory[address][: array.nbytes] = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)


class _Clock:
    def record(self, *_stream):
        self.at = time.perf_counter()


class FakePycuda(FakeDeviceMemory, ModuleType):
    """``pycuda.driver`` with one GPU (default: a discrete-looking Orin, sm 8.7, 16 SMs)."""

    class Error(Exception):
        pass

    def __init__(self, gpu_name="Orin", compute_capability=(8, 7), *, sm_count=16, total_memory=61 << 30,
                 integrated=False, driver_version=12060):
        FakeDeviceMemory.__init__(self)
        ModuleType.__init__(self, "pycuda.driver")
        fake = self
        self.pushed = 0
        self.device_attribute = SimpleNamespace(MULTIPROCESSOR_COUNT="SMS", INTEGRATED="INTEGRATED",
                                                CAN_MAP_HOST_MEMORY="CAN_MAP")
        self.host_alloc_flags = SimpleNamespace(DEVICEMAP=2)
        attributes = {"SMS": sm_count, "INTEGRATED": int(integrated), "CAN_MAP": 1}

        class Context:
            def push(self):
                fake.pushed += 1

            def detach(self):
                pass

            @staticmethod
            def pop():
                fake.pushed -= 1

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

            def total_memory(self):
                return total_memory

            def get_attribute(self, attribute):
                return attributes[attribute]

            def retain_primary_context(self):
                return Context()

        class Allocation:
            def __init__(self, nbytes):
                self.address = fake.new_address(nbytes)
                fake.memory[self.address] = np.zeros(nbytes, np.uint8)

            def __int__(self):
                return self.address

            def free(self):
                del fake.memory[self.address]

        class Stream:
            handle = 77

            def synchronize(self):
                pass

        class Event(_Clock):
            def time_till(self, other):
                return (other.at - self.at) * 1e3

        self.Context, self.Device, self.Stream, self.Event, self.mem_alloc = Context, Device, Stream, Event, Allocation
        self._driver_version = driver_version

    def init(self):
        pass

    def get_version(self):
        return (11, 4, 0)  # what pycuda was compiled with: not what the process runs

    def get_driver_version(self):
        return self._driver_version

    def pagelocked_empty(self, count, dtype, mem_flags=0):
        fake = self

        class HostAllocation(bytearray):  # pycuda's array.base: the allocation, with these methods
            address = None

            def get_device_pointer(self):
                return self.address

            def free(self):
                if self.address is not None:
                    fake.memory.pop(self.address, None)

        allocation = HostAllocation(max(1, count) * np.dtype(dtype).itemsize)
        if mem_flags == self.host_alloc_flags.DEVICEMAP:
            allocation.address = self.new_address(len(allocation))
            self.memory[allocation.address] = np.ndarray((len(allocation),), np.uint8, buffer=allocation)
        return np.ndarray((count,), dtype, buffer=allocation)

    def memcpy_htod_async(self, dev, host, stream):
        self.memory[int(dev)][: host.nbytes] = np.frombuffer(host.tobytes(), np.uint8)

    def memcpy_dtoh_async(self, host, dev, stream):
        host[...] = np.frombuffer(self.memory[int(dev)][: host.nbytes].tobytes(), host.dtype).reshape(host.shape)


class FakeCudart(FakeDeviceMemory, ModuleType):
    """``cuda.bindings.runtime``: every call returns ``(error, *results)``; error 0 is success."""

    cudaHostAllocDefault, cudaHostAllocMapped = 0, 2
    cudaMemcpyKind = SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def __init__(self, gpu_name="Orin", compute_capability=(8, 7), *, sm_count=16, total_memory=61 << 30,
                 integrated=True, runtime_version=12060, fail=()):
        FakeDeviceMemory.__init__(self)
        ModuleType.__init__(self, "cuda.bindings.runtime")
        self.calls: list[str] = []
        self.host: dict[int, np.ndarray] = {}  # host allocations by address, kept alive here
        self._fail = set(fail)
        self._props = SimpleNamespace(name=gpu_name.encode(), major=compute_capability[0],
                                      minor=compute_capability[1], multiProcessorCount=sm_count,
                                      totalGlobalMem=total_memory, integrated=int(integrated), canMapHostMemory=1)
        self._runtime_version = runtime_version
        fake = self

        def call(name, result):
            def function(*args):
                fake.calls.append(name)
                if name in fake._fail:
                    return (719,) + ((None,) if result is not None else ())
                value = result(*args) if callable(result) else result
                return (0,) if value is None else (0, value)
            return function

        for name, result in {
            "cudaGetDeviceCount": 1, "cudaGetDeviceProperties": lambda i: self._props,
            "cudaRuntimeGetVersion": lambda: self._runtime_version, "cudaSetDevice": lambda i: None,
            "cudaMalloc": self._malloc, "cudaFree": self._free,
            "cudaHostAlloc": self._host_alloc, "cudaFreeHost": self._free_host,
            "cudaHostGetDevicePointer": lambda address, flags: address,  # unified addressing: the same pointer
            "cudaStreamCreate": lambda: _Handle(88), "cudaStreamSynchronize": lambda s: None,
            "cudaStreamDestroy": lambda s: None, "cudaEventCreate": _Clock, "cudaEventDestroy": lambda e: None,
            "cudaEventRecord": lambda e, s: e.record(), "cudaEventElapsedTime": lambda a, b: (b.at - a.at) * 1e3,
            "cudaMemcpyAsync": self._memcpy,
        }.items():
            setattr(self, name, call(name, result))

    def cudaGetErrorName(self, err):  # noqa: N802 - CUDA's name
        return (0, b"cudaErrorLaunchFailure" if err == 719 else b"cudaErrorUnknown")

    def _malloc(self, nbytes):
        address = self.new_address(nbytes)
        self.memory[address] = np.zeros(nbytes, np.uint8)
        return address

    def _free(self, address):
        del self.memory[address]

    def _host_alloc(self, nbytes, flags):
        buffer = np.zeros(nbytes, np.uint8)
        address = buffer.ctypes.data
        self.host[address] = buffer
        if flags == self.cudaHostAllocMapped:
            self.memory[address] = buffer  # device pointer == host pointer, the same bytes
        return address

    def _free_host(self, address):
        self.host.pop(address)
        self.memory.pop(address, None)

    def _memcpy(self, dst, src, nbytes, kind, stream):
        if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice:
            self.memory[dst][:nbytes] = np.frombuffer(ctypes.string_at(src, nbytes), np.uint8)
        else:
            ctypes.memmove(dst, self.memory[src].ctypes.data, nbytes)


class _Handle:
    def __init__(self, value):
        self.value = value

    def __int__(self):
        return self.value


def install_pycuda(monkeypatch, cuda: FakePycuda) -> None:
    """``import pycuda.driver`` finds ``cuda``; cuda-python is hidden, and so is any real CUDA
    runtime library on this machine (the fake driver's version is the CUDA version)."""
    from vitdeploy.tensorrt.cuda import pycuda_layer

    monkeypatch.setattr(pycuda_layer, "cudart_version", lambda: None)
    pycuda = ModuleType("pycuda")
    pycuda.driver = cuda
    pycuda.VERSION_TEXT = "2024.1.2"
    monkeypatch.setitem(sys.modules, "pycuda", pycuda)
    monkeypatch.setitem(sys.modules, "pycuda.driver", cuda)
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime"):
        monkeypatch.setitem(sys.modules, name, None)


def install_cudart(monkeypatch, cudart: FakeCudart) -> None:
    """``from cuda.bindings import runtime`` finds ``cudart``; pycuda is hidden (a CUDA 13 Thor)."""
    cuda, bindings = ModuleType("cuda"), ModuleType("cuda.bindings")
    bindings.runtime, bindings.__version__ = cudart, "13.0.1"
    cuda.bindings = bindings
    for name, module in (("cuda", cuda), ("cuda.bindings", bindings), ("cuda.bindings.runtime", cudart)):
        monkeypatch.setitem(sys.modules, name, module)
    for name in ("pycuda", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, name, None)
