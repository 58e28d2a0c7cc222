"""The CUDA layer on NVIDIA's cuda-python (``cuda.bindings.runtime``), as TensorRT's own Python
samples use it (``samples/python/common_runtime.py``): the CUDA layer for CUDA 13 (Jetson Thor,
JetPack 7), where older pycuda releases do not build.

Every call returns ``(cudaError_t, *results)``; ``_call`` turns a failure into a ``BackendError``
that names the call and CUDA's error name. The runtime API uses the device's primary context, made
current on the calling thread by ``cudaSetDevice``.
"""

from __future__ import annotations

import ctypes
from types import ModuleType
from typing import Any

import numpy as np

from vitdeploy.errors import BackendError, MissingDependencyError
from vitdeploy.tensorrt.cuda.layer import CudaLayer, DeviceBuffer, DeviceInfo, Event, HostBuffer, Stream


def import_cudart(install: str) -> ModuleType:
    """``cuda.bindings.runtime`` (``cuda.cudart`` before cuda-python 12.6.1) with at least one GPU."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6.1
        except ImportError as exc:
            raise MissingDependencyError(f"cuda-python (Python package `cuda-python`: {exc})",
                                         install=install) from exc
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0:
        raise MissingDependencyError(f"a CUDA GPU and driver (cudaGetDeviceCount failed: {_name(cudart, err)})",
                                     install=install)
    if count == 0:
        raise MissingDependencyError("a CUDA GPU (the driver sees none)", install=install)
    return cudart


def _name(cudart: ModuleType, err: Any) -> str:
    try:
        return cudart.cudaGetErrorName(err)[1].decode()
    except Exception:  # noqa: BLE001 - naming the error must not hide it
        return str(err)


class _RtStream(Stream):
    def __init__(self, layer: BindingsLayer, stream: Any):
        self._layer, self._stream = layer, stream
        self.handle = int(stream)

    def synchronize(self) -> None:
        self._layer._call("cudaStreamSynchronize", self._stream)

    def destroy(self) -> None:
        self._layer._call("cudaStreamDestroy", self._stream)


class _RtEvent(Event):
    def __init__(self, layer: BindingsLayer, event: Any):
        self._layer, self._event = layer, event

    def record(self, stream: Stream) -> None:
        self._layer._call("cudaEventRecord", self._event, stream._stream)

    def elapsed_ms(self, end: Event) -> float:
        return float(self._layer._call("cudaEventElapsedTime", self._event, end._event))

    def destroy(self) -> None:
        self._layer._call("cudaEventDestroy", self._event)


class BindingsLayer(CudaLayer):
    name = "cuda-python"

    def __init__(self, cudart: ModuleType, index: int):
        super().__init__(index)
        self._rt = cudart
        count = self._call("cudaGetDeviceCount")
        if not 0 <= index < count:
            raise BackendError(f"tensorrt: requested GPU {index}, available: {list(range(count))}")
        props = self._call("cudaGetDeviceProperties", index)
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        self._info = DeviceInfo(
            index=index, name=name.rstrip("\0"), compute_capability=f"{props.major}.{props.minor}",
            sm_count=int(props.multiProcessorCount), total_memory=int(props.totalGlobalMem),
            integrated=bool(props.integrated), can_map_host_memory=bool(props.canMapHostMemory))

    def _call(self, function: str, *args: Any) -> Any:
        err, *result = getattr(self._rt, function)(*args)
        if int(err) != 0:
            raise BackendError(f"tensorrt: {function} failed with {_name(self._rt, err)}")
        return result[0] if len(result) == 1 else (tuple(result) or None)

    @property
    def info(self) -> DeviceInfo:
        return self._info

    def runtime_version(self) -> str:
        packed = int(self._call("cudaRuntimeGetVersion"))
        return f"{packed // 1000}.{packed % 1000 // 10}"

    def library_version(self) -> str:
        try:
            import cuda.bindings

            return str(cuda.bindings.__version__)
        except (ImportError, AttributeError):
            return "unknown"

    def _push(self) -> None:
        self._call("cudaSetDevice", self.index)

    def alloc(self, nbytes: int) -> DeviceBuffer:
        return DeviceBuffer(int(self._call("cudaMalloc", max(1, nbytes))), nbytes)

    def free(self, buffer: DeviceBuffer) -> None:
        self._call("cudaFree", buffer.address)

    def host_alloc(self, count: int, dtype: np.dtype, *, mapped: bool = False) -> HostBuffer:
        dtype = np.dtype(dtype)
        nbytes = max(1, count * dtype.itemsize)
        flags = self._rt.cudaHostAllocMapped if mapped else self._rt.cudaHostAllocDefault
        address = int(self._call("cudaHostAlloc", nbytes, flags))
        # a uint8 view first, then the real dtype: numpy's ctypes mapping has no float16
        raw = np.ctypeslib.as_array(ctypes.cast(ctypes.c_void_p(address), ctypes.POINTER(ctypes.c_ubyte)), (nbytes,))
        array = raw[: count * dtype.itemsize].view(dtype)
        device = int(self._call("cudaHostGetDevicePointer", address, 0)) if mapped else None
        return HostBuffer(array, device_address=device, handle=address)

    def free_host(self, buffer: HostBuffer) -> None:
        self._call("cudaFreeHost", buffer.handle)

    def stream(self) -> Stream:
        return _RtStream(self, self._call("cudaStreamCreate"))

    def event(self) -> Event:
        return _RtEvent(self, self._call("cudaEventCreate"))

    def copy_to_device(self, address: int, src: np.ndarray, stream: Stream) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call("cudaMemcpyAsync", address, src.ctypes.data, src.nbytes, kind, stream._stream)

    def copy_to_host(self, dst: np.ndarray, address: int, stream: Stream) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call("cudaMemcpyAsync", dst.ctypes.data, address, dst.nbytes, kind, stream._stream)
