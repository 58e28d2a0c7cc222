"""CUDA graphs through the driver API, for the tensorrt backend.

pycuda has no stream capture, so this wraps the five driver calls it takes (libcuda is always
there when a GPU is: it is the driver). A graph replays the kernels captured on a stream with one
launch, which removes the per-kernel launch cost that dominates small ViTs on Orin-class GPUs.
A graph is fixed to the shapes and buffer addresses it was captured with.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

from vitdeploy.errors import BackendError, MissingDependencyError

# CUstreamCaptureMode: only this thread's CUDA calls are checked against the capture
_CAPTURE_THREAD_LOCAL = 1


@functools.cache
def _libcuda() -> ctypes.CDLL:
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError as exc:
        raise MissingDependencyError(f"the CUDA driver library ({exc})",
                                     install="the NVIDIA driver for this GPU") from exc


def _check(lib: ctypes.CDLL, result: int, call: str) -> None:
    if result == 0:
        return
    name = ctypes.c_char_p()
    lib.cuGetErrorName(result, ctypes.byref(name))
    raise BackendError(f"tensorrt: {call} failed with {name.value.decode() if name.value else result} while using a "
                       f"CUDA graph; run without CUDA graphs (cuda_graphs=False)")


class CudaGraph:
    """One captured, instantiated graph; ``launch`` replays it on a stream."""

    def __init__(self, lib: ctypes.CDLL, graph: ctypes.c_void_p, exec_: ctypes.c_void_p):
        self._lib = lib
        self._graph = graph
        self._exec = exec_

    @classmethod
    def capture(cls, stream: int, work: Callable[[], object]) -> CudaGraph:
        """Capture what ``work`` enqueues on ``stream`` (a CUstream handle). ``work`` returning
        False (as TensorRT's enqueue does on failure) aborts the capture."""
        lib = _libcuda()
        handle = ctypes.c_void_p(stream)
        _check(lib, lib.cuStreamBeginCapture_v2(handle, ctypes.c_int(_CAPTURE_THREAD_LOCAL)), "cuStreamBeginCapture")
        graph = ctypes.c_void_p()
        try:
            ok = work()
        except BaseException:
            # leave the stream usable: end the capture and drop what was recorded
            lib.cuStreamEndCapture(handle, ctypes.byref(graph))
            if graph.value:
                lib.cuGraphDestroy(graph)
            raise
        ended = lib.cuStreamEndCapture(handle, ctypes.byref(graph))
        if ok is False:
            if graph.value:
                lib.cuGraphDestroy(graph)
            raise BackendError("tensorrt: the engine could not be enqueued while capturing a CUDA graph; "
                               "run without CUDA graphs (cuda_graphs=False)")
        _check(lib, ended, "cuStreamEndCapture")
        exec_ = ctypes.c_void_p()
        result = lib.cuGraphInstantiateWithFlags(ctypes.byref(exec_), graph, ctypes.c_ulonglong(0))
        if result != 0:
            lib.cuGraphDestroy(graph)
            _check(lib, result, "cuGraphInstantiate")
        return cls(lib, graph, exec_)

    def launch(self, stream: int) -> None:
        _check(self._lib, self._lib.cuGraphLaunch(self._exec, ctypes.c_void_p(stream)), "cuGraphLaunch")

    def close(self) -> None:
        if self._exec.value:
            self._lib.cuGraphExecDestroy(self._exec)
            self._exec = ctypes.c_void_p()
        if self._graph.value:
            self._lib.cuGraphDestroy(self._graph)
            self._graph = ctypes.c_void_p()
