"""What a benchmark ran on: the machine, the library versions, and how much memory a run took.

A latency figure without its machine is meaningless, so every bench report carries
``describe_machine()``. GPU libraries are looked up, never imported for their own sake: torch is
consulted for the GPU name only when it is installed (DESIGN.md decision 3).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from dataclasses import dataclass
from pathlib import Path

#: Distributions whose versions a report records (those installed).
LIBRARIES = ("vitdeploy", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", "pycuda",
             "nvidia-modelopt", "faster-coco-eval", "opencv-python-headless")

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def library_versions() -> dict[str, str]:
    """Distribution name -> version, for those of ``LIBRARIES`` that are installed."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def cpu_model() -> str:
    """The CPU's marketing name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")) and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The first CUDA GPU's name as torch sees it; None without torch or without a GPU."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def describe_machine() -> dict[str, object]:
    """JSON-ready description: OS, Python, CPU model and logical cores (and those this process may
    use), GPU (or None), and library versions."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu_model(),
            "cores": os.cpu_count(), "cores_usable": usable, "gpu": gpu_name(), "libraries": library_versions()}


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True)
class MemoryUse:
    """Peak memory a configuration added, MiB. ``kind``: ``rss`` (peak resident set size of the
    process above what it was before the backend was opened), ``cuda`` (torch's peak allocation on
    the GPU), ``rss-end`` (resident size at the end above the start, where the peak cannot be
    reset), or ``unknown``. In one process the RSS figure is a lower bound once earlier
    configurations have grown the heap: memory they freed is reused without raising the RSS."""

    kind: str
    peak_delta_mib: float | None

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "peak_delta_mib": self.peak_delta_mib}


class MemoryProbe:
    """Measures the memory one configuration takes: start before opening the backend, stop after
    the last inference. On Linux the peak RSS (VmHWM) is reset at start through
    /proc/self/clear_refs, so the peak belongs to this configuration alone. ``cuda_device``: a torch
    CUDA device whose allocator peak to measure instead (the torch backend on a GPU)."""

    def __init__(self, *, cuda_device: str | None = None):
        self.cuda_device = cuda_device
        self._base_kib: int | None = None
        self._peak_reset = False
        self._cuda_base = 0

    def start(self) -> None:
        if self.cuda_device is not None:
            import torch

            torch.cuda.reset_peak_memory_stats(self.cuda_device)
            self._cuda_base = torch.cuda.memory_allocated(self.cuda_device)
            return
        self._base_kib = _status_kb("VmRSS")
        try:
            _CLEAR_REFS.write_text("5", encoding="ascii")  # "5": reset the peak RSS to the current RSS
            self._peak_reset = True
        except OSError:
            self._peak_reset = False

    def stop(self) -> MemoryUse:
        if self.cuda_device is not None:
            import torch

            peak = torch.cuda.max_memory_allocated(self.cuda_device) - self._cuda_base
            return MemoryUse("cuda", round(peak / 2**20, 1))
        if self._base_kib is None:
            return MemoryUse("unknown", None)
        if self._peak_reset and (hwm := _status_kb("VmHWM")) is not None:
            return MemoryUse("rss", round(max(0, hwm - self._base_kib) / 1024, 1))
        end = _status_kb("VmRSS")
        if end is None:
            return MemoryUse("unknown", None)
        return MemoryUse("rss-end", round(max(0, end - self._base_kib) / 1024, 1))
