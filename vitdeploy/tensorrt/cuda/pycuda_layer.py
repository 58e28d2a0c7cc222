"""The CUDA layer on pycuda (the CUDA driver API): what JetPack 6 / DriveOS 7 cars have installed.

pycuda binds a CUDA context to a thread, so every block of GPU work pushes the device's primary
context (the one TensorRT uses too) and pops it after. pycuda's own ``get_version()`` is the CUDA
pycuda was *compiled* with, which says nothing about the CUDA this process runs; the runtime
version comes from the CUDA runtime library (``cudaRuntimeGetVersion``), else from the driver.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from types import ModuleType

import numpy as np

from vitdeploy.errors import BackendError, MissingDependencyError
from vitdeploy.tensorrt.cuda.layer import CudaLayer, DeviceBuffer, DeviceInfo, Event, HostBuffer, Stream


def import_pycuda(install: str) -> ModuleType:
    """``pycuda.driver``, initialised, with at least one GPU; else ``MissingDependencyError``."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise MissingDependencyError(f"pycuda (Python package `pycuda`: {exc})", install=install) from exc
    try:
        cuda.init()
        count = cuda.Device.count()
    except cuda.Error as exc:
        raise MissingDependencyError(f"a CUDA GPU and driver (cuInit failed: {exc})", install=install) from exc
    if count == 0:
        raise MissingDependencyError("a CUDA GPU (the driver sees none)", install=install)
    return cuda


def _version(packed: int) -> str:
    """12060 -> "12.6" (CUDA packs versions as 1000 * major + 10 * minor)."""
    return f"{packed // 1000}.{packed % 1000 // 10}"


def cudart_version() -> int | None:
    """``cudaRuntimeGetVersion`` of the CUDA runtime library the process can load, or None."""
    name = ctypes.util.find_library("cudart") or "libcudart.so"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    version = ctypes.c_int()
    return version.value if lib.cudaRuntimeGetVersion(ctypes.byref(version)) == 0 else None


class _PyStream(Stream):
    def __init__(self, stream):
        self._stream = stream
        self.handle = int(stream.handle)

    def synchronize(self) -> None:
        self._stream.synchronize()


class _PyEvent(Event):
    def __init__(self, event):
        self._event = event

    def record(self, stream: Stream) -> None:
        self._event.record(stream._stream)

    def elapsed_ms(self, end: Event) -> float:
        return float(self._event.time_till(end._event))


class PycudaLayer(CudaLayer):
    name = "pycuda"

    def __init__(self, cuda: ModuleType, index: int):
        super().__init__(index)
        count = cuda.Device.count()
        if not 0 <= index < count:
            raise BackendError(f"tensorrt: requested GPU {index}, available: {list(range(count))}")
        self._cuda = cuda
        self._device = cuda.Device(index)
        self._context = self._device.retain_primary_context()
        attr = cuda.device_attribute
        major, minor = self._device.compute_capability()
        self._info = DeviceInfo(
            index=index, name=self._device.name(), compute_capability=f"{major}.{minor}",
            sm_count=int(self._device.get_attribute(attr.MULTIPROCESSOR_COUNT)),
            total_memory=int(self._device.total_memory()),
            integrated=bool(self._device.get_attribute(attr.INTEGRATED)),
            can_map_host_memory=bool(self._device.get_attribute(attr.CAN_MAP_HOST_MEMORY)))

    @property
    def info(self) -> DeviceInfo:
        return self._info

    def runtime_version(self) -> str:
        packed = cudart_version()
        if packed is None:  # no CUDA runtime library on the loader path: the driver's CUDA
            packed = int(self._cuda.get_driver_version())
        return _version(packed)

    def library_version(self) -> str:
        import pycuda

        return str(getattr(pycuda, "VERSION_TEXT", "unknown"))

    def _push(self) -> None:
        self._context.push()

    def _pop(self) -> None:
        self._cuda.Context.pop()

    def close(self) -> None:
        self._context.detach()

    def alloc(self, nbytes: int) -> DeviceBuffer:
        allocation = self._cuda.mem_alloc(max(1, nbytes))
        return DeviceBuffer(int(allocation), nbytes, allocation)

    def free(self, buffer: DeviceBuffer) -> None:
        buffer.handle.free()

    def host_alloc(self, count: int, dtype: np.dtype, *, mapped: bool = False) -> HostBuffer:
        cuda = self._cuda
        flags = cuda.host_alloc_flags.DEVICEMAP if mapped else 0
        array = cuda.pagelocked_empty(count, dtype, mem_flags=flags)
        allocation = array.base  # pycuda's HostAllocation: frees the memory, knows its device pointer
        return HostBuffer(array, device_address=int(allocation.get_device_pointer()) if mapped else None,
                          handle=allocation)

    def free_host(self, buffer: HostBuffer) -> None:
        buffer.handle.free()

    def stream(self) -> Stream:
        return _PyStream(self._cuda.Stream())

    def event(self) -> Event:
        return _PyEvent(self._cuda.Event())

    def copy_to_device(self, address: int, src: np.ndarray, stream: Stream) -> None:
        self._cuda.memcpy_htod_async(address, src, stream._stream)

    def copy_to_host(self, dst: np.ndarray, address: int, stream: Stream) -> None:
        self._cuda.memcpy_dtoh_async(dst, address, stream._stream)
