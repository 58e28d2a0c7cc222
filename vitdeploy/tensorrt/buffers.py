"""The memory an engine runs in: one buffer per I/O tensor and one activation buffer for all
execution contexts.

I/O: each tensor gets a page-locked host buffer sized for the profile's largest shape. On a
discrete GPU it also gets a device buffer and every call copies in and out. On an integrated GPU
(Jetson, DRIVE: the GPU reads the same DRAM as the CPU) the host buffer is mapped into the device's
address space and TensorRT reads and writes it directly (zero-copy; NVIDIA's "CUDA for Tegra"
application note, Memory Management), so there is nothing to copy.

Activations: every execution context needs scratch memory for its intermediate tensors. Created
the default way (``STATIC``) each context allocates the engine's largest size itself, so with
CUDA graphs — one context per captured camera count — a 6-camera rig held seven copies. Contexts
created ``USER_MANAGED`` are given one buffer of ``ICudaEngine.device_memory_size_v2`` (the
largest over the engine's profiles) with ``set_device_memory``. They may share it because they
never run at the same time: every context of a backend enqueues on the backend's one stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vitdeploy.tensorrt.cuda import CudaLayer, DeviceBuffer, HostBuffer, Stream


@dataclass
class IOBuffer:
    """The memory of one I/O tensor; ``address`` is what TensorRT is given."""

    name: str
    dtype: np.dtype
    host: HostBuffer
    device: DeviceBuffer | None  # None: ``host`` is mapped (zero-copy)

    @property
    def address(self) -> int:
        return self.device.address if self.device is not None else int(self.host.device_address)

    @property
    def zero_copy(self) -> bool:
        return self.device is None

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.host.view(shape)


class EngineMemory:
    """All device and host memory of one engine on one GPU; ``release`` frees it (the GPU must be
    current)."""

    def __init__(self, gpu: CudaLayer):
        self.gpu = gpu
        self.zero_copy = gpu.info.integrated and gpu.info.can_map_host_memory
        self.io: dict[str, IOBuffer] = {}
        self.activations: DeviceBuffer | None = None

    def add_tensor(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> IOBuffer:
        count = max(1, math.prod(shape))
        host = self.gpu.host_alloc(count, dtype, mapped=self.zero_copy)
        device = None if self.zero_copy else self.gpu.alloc(host.array.nbytes)
        self.io[name] = IOBuffer(name, np.dtype(dtype), host, device)
        return self.io[name]

    def allocate_activations(self, nbytes: int) -> DeviceBuffer:
        """The one activation buffer every execution context of the engine shares."""
        self.activations = self.gpu.alloc(nbytes)
        return self.activations

    def copy_in(self, feed: dict[str, np.ndarray], stream: Stream) -> None:
        """Stage ``feed`` in the host buffers and, on a discrete GPU, enqueue the copies."""
        for name, array in feed.items():
            buf = self.io[name]
            view = buf.view(array.shape)
            np.copyto(view, array)
            if not buf.zero_copy:
                self.gpu.copy_to_device(buf.address, view, stream)

    def copy_out(self, shapes: dict[str, tuple[int, ...]], stream: Stream) -> None:
        """Enqueue the copies of the outputs (``shapes``) back to their host buffers."""
        for name, shape in shapes.items():
            buf = self.io[name]
            if not buf.zero_copy:
                self.gpu.copy_to_host(buf.view(shape), buf.address, stream)

    def read(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
        """The outputs, copied out of the host buffers (after the stream has synchronised)."""
        return {name: self.io[name].view(shape).copy() for name, shape in shapes.items()}

    def release(self) -> None:
        for buf in self.io.values():
            if buf.device is not None:
                self.gpu.free(buf.device)
            self.gpu.free_host(buf.host)
        self.io = {}
        if self.activations is not None:
            self.gpu.free(self.activations)
            self.activations = None
