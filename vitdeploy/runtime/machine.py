"""What a measurement ran on: the machine and the library versions.

A latency or accuracy figure without its machine is meaningless, so every bench, eval and demo
report carries ``describe_machine()``. GPU libraries are looked up, never imported for their own
sake: torch is consulted for the GPU name only when it is installed (DESIGN.md decision 3).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path
from typing import Any

#: Distributions whose versions a report records (those installed).
LIBRARIES = ("vitdeploy", "numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "torch", "tensorrt", "pycuda",
             "cuda-python", "nvidia-modelopt", "faster-coco-eval", "opencv-python-headless", "opencv-python",
             "typer", "rich")



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


def usable_cores() -> int:
    """The logical cores this process may run on (its affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def describe_machine() -> dict[str, object]:
    """JSON-ready description: OS, Python, CPU model and logical cores (and those this process may
    use), GPU (or None), and library versions."""
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu_model(),
            "cores": os.cpu_count(), "cores_usable": usable_cores(), "gpu": gpu_name(),
            "libraries": library_versions()}


def machine_line(machine: dict[str, Any]) -> str:
    """'AMD EPYC, 2 cores, no GPU; onnxruntime 1.20, torch 2.6' for a report's header."""
    libs = machine.get("libraries") or {}
    shown = ", ".join(f"{k} {libs[k]}" for k in ("onnxruntime", "torch", "tensorrt") if k in libs)
    cores = machine.get("cores_usable") or machine.get("cores")
    gpu = machine.get("gpu") or "no GPU"
    return f"{machine.get('cpu', '?')}, {cores} cores, {gpu}" + (f"; {shown}" if shown else "")
