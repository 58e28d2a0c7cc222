"""The one small CUDA interface the TensorRT builder and runner are written against.

Two implementations: NVIDIA's ``cuda-python`` (``cuda.bindings``, the runtime API TensorRT's own
Python samples use, and the one that exists for CUDA 13 / Jetson Thor / JetPack 7) and ``pycuda``
(the driver API, what JetPack 6 cars have installed). Both give the same few things: the device's
properties, device allocations, pinned host buffers (mapped into the device's address space where
asked), streams, events and asynchronous copies. Addresses cross the interface as plain ``int``
(what ``IExecutionContext.set_tensor_address`` takes), so nothing above this layer knows which
library is underneath.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DeviceInfo:
    """What CUDA says about one GPU. ``total_memory`` in bytes (on Jetson: the shared DRAM the GPU
    may use); ``integrated``: the GPU shares DRAM with the CPU (Jetson, DRIVE)."""

    index: int
    name: str
    compute_capability: str  # "8.7"
    sm_count: int  # multiProcessorCount: 16 on a Jetson AGX Orin 64 GB, 8 on an Orin NX 16 GB
    total_memory: int
    integrated: bool
    can_map_host_memory: bool


@dataclass
class DeviceBuffer:
    """``nbytes`` of device memory at ``address``; ``handle`` is the library's own object."""

    address: int
    nbytes: int
    handle: Any = None


@dataclass
class HostBuffer:
    """A flat, page-locked host array. ``device_address`` is set when the buffer is mapped into the
    device's address space (zero-copy): the GPU reads and writes these very bytes."""

    array: np.ndarray
    device_address: int | None = None
    handle: Any = None

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        """The first ``prod(shape)`` elements as an array of ``shape`` (no copy)."""
        return self.array[: math.prod(shape)].reshape(shape)


class Stream(abc.ABC):
    #: the CUDA stream as an integer (``cudaStream_t`` / ``CUstream``), for TensorRT's enqueue
    handle: int

    @abc.abstractmethod
    def synchronize(self) -> None: ...

    def destroy(self) -> None:  # noqa: B027 - pycuda frees its stream when it is collected
        pass


class Event(abc.ABC):
    @abc.abstractmethod
    def record(self, stream: Stream) -> None: ...

    @abc.abstractmethod
    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds from this event to ``end`` (both recorded and completed)."""

    def destroy(self) -> None:  # noqa: B027 - pycuda frees its event when it is collected
        pass


class CudaLayer(abc.ABC):
    """One GPU, opened through one CUDA library. Calls that touch the GPU must run inside
    ``current()`` (pycuda binds a context to the calling thread; the runtime API needs the device
    selected on it)."""

    #: "cuda-python" or "pycuda"
    name: str = ""

    def __init__(self, index: int):
        self.index = index

    # ---- the device ---------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def info(self) -> DeviceInfo: ...

    @abc.abstractmethod
    def runtime_version(self) -> str:
        """The CUDA runtime this process runs on, "major.minor" (e.g. "12.6")."""

    @abc.abstractmethod
    def library_version(self) -> str:
        """The Python package's own version, for reports."""

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make this GPU current on the calling thread for the duration of the block."""
        self._push()
        try:
            yield
        finally:
            self._pop()

    def _push(self) -> None:  # noqa: B027 - the runtime API needs nothing per block
        pass

    def _pop(self) -> None:  # noqa: B027
        pass

    def close(self) -> None:  # noqa: B027
        """Release what opening the device took (pycuda: the primary context's reference)."""

    # ---- memory, streams, events --------------------------------------------------------------
    @abc.abstractmethod
    def alloc(self, nbytes: int) -> DeviceBuffer: ...

    @abc.abstractmethod
    def free(self, buffer: DeviceBuffer) -> None: ...

    @abc.abstractmethod
    def host_alloc(self, count: int, dtype: np.dtype, *, mapped: bool = False) -> HostBuffer:
        """``count`` elements of page-locked host memory; ``mapped``: also mapped into the device's
        address space (``HostBuffer.device_address``)."""

    @abc.abstractmethod
    def free_host(self, buffer: HostBuffer) -> None: ...

    @abc.abstractmethod
    def stream(self) -> Stream: ...

    @abc.abstractmethod
    def event(self) -> Event: ...

    @abc.abstractmethod
    def copy_to_device(self, address: int, src: np.ndarray, stream: Stream) -> None:
        """Enqueue a copy of ``src`` (page-locked, contiguous) to device ``address``."""

    @abc.abstractmethod
    def copy_to_host(self, dst: np.ndarray, address: int, stream: Stream) -> None:
        """Enqueue a copy of ``dst.nbytes`` from device ``address`` into ``dst`` (page-locked)."""
