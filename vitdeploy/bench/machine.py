"""How much memory a benchmarked configuration took (the machine itself: ``runtime.machine``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


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
