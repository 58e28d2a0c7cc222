"""What sharing one activation buffer across execution contexts saves, from the engine's own sizes.

With CUDA graphs the tensorrt backend keeps one execution context per captured camera count plus
its main one. Created ``STATIC`` (TensorRT's default), each context allocates the engine's largest
activation size, ``ICudaEngine.device_memory_size_v2``; created ``USER_MANAGED`` they share one
buffer of that size (``buffers.py``). ``IExecutionContext.update_device_memory_size_for_shapes``
says what each camera count itself needs, which is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryRow:
    """A rig whose camera count has varied over ``1..cameras`` (a CUDA graph captured for each)."""

    cameras: int
    contexts: int  # the main context and one per captured camera count
    needed_bytes: int  # what TensorRT says ``cameras`` cameras need (update_device_memory_size_for_shapes)
    separate_bytes: int  # every context allocating the engine's largest size (STATIC)
    shared_bytes: int  # one buffer of the engine's largest size for all of them (USER_MANAGED)

    @property
    def saved_bytes(self) -> int:
        return self.separate_bytes - self.shared_bytes


def activation_memory_rows(*, engine_bytes: int, needed: dict[int, int]) -> list[MemoryRow]:
    """One row per camera count in ``needed`` (camera count -> bytes TensorRT reports for it);
    ``engine_bytes`` is ``device_memory_size_v2``."""
    rows = []
    for k, cameras in enumerate(sorted(needed), start=1):
        contexts = 1 + k
        rows.append(MemoryRow(cameras=cameras, contexts=contexts, needed_bytes=needed[cameras],
                              separate_bytes=contexts * engine_bytes, shared_bytes=engine_bytes))
    return rows


def format_rows(rows: list[MemoryRow]) -> str:
    """A Markdown table of ``rows`` in MiB."""
    mib = 1 << 20
    lines = ["| cameras (graphs 1..n) | contexts | needed at n MiB | separate MiB | shared MiB | saved MiB |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r.cameras} | {r.contexts} | {r.needed_bytes / mib:.1f} | {r.separate_bytes / mib:.1f} | "
              f"{r.shared_bytes / mib:.1f} | {r.saved_bytes / mib:.1f} |" for r in rows]
    return "\n".join(lines)
