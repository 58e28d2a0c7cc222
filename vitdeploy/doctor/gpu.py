"""The GPU, CUDA and TensorRT this machine offers, and which CUDA layer vitdeploy would use.

The GPU's name and compute capability come from ``nvidia-smi`` where it answers (desktop and data
centre GPUs, Thor), else from the CUDA layer (pycuda or cuda-python: a Jetson Orin's nvidia-smi
reports little). TensorRT's version is the module's own; the CUDA version is the runtime this
process loads (the CUDA layer asks ``cudaRuntimeGetVersion``), as the engine provenance records it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vitdeploy.doctor.system import System
from vitdeploy.errors import MissingDependencyError, VitDeployError
from vitdeploy.extras import installed

NVIDIA_SMI = ["nvidia-smi", "--query-gpu=name,compute_cap,memory.total,driver_version", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class GpuFacts:
    """One GPU: ``source`` says who told ("nvidia-smi", "pycuda", "cuda-python"); ``memory_mib``
    on a Jetson is the shared DRAM the GPU may use; None where the source does not say."""

    name: str
    compute_capability: str | None
    memory_mib: int | None
    source: str
    driver: str | None = None
    sm_count: int | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class TensorRtFacts:
    """TensorRT's version (None: ``tensorrt_note`` says why), the CUDA layer a run would use
    (``cuda_layer_in_use``: "pycuda", "cuda-python" or "none (...)") and, where it opened a GPU,
    its own version and the CUDA runtime's."""

    tensorrt: str | None
    tensorrt_note: str | None
    cuda_layer: str
    cuda_layer_version: str | None = None
    cuda_runtime: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _value(field: str) -> str | None:
    field = field.strip()
    return None if not field or field.strip("[]").upper() in ("N/A", "NOT SUPPORTED") else field


def parse_nvidia_smi(text: str) -> list[GpuFacts]:
    """``nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader,nounits``,
    one GPU a line ('NVIDIA H100 80GB HBM3, 9.0, 81559, 550.54.15'); fields nvidia-smi cannot tell
    ('[N/A]', as on a Jetson) are None. GPU names never hold commas; the three fields after do not either."""
    gpus = []
    for line in text.splitlines():
        fields = line.rsplit(",", 3)
        if len(fields) != 4 or not fields[0].strip():
            continue
        name, cc, memory, driver = (_value(f) for f in fields)
        if name is None:
            continue
        gpus.append(GpuFacts(name=name, compute_capability=cc, driver=driver, source="nvidia-smi",
                             memory_mib=int(float(memory)) if memory and memory.replace(".", "").isdigit() else None))
    return gpus


def read_nvidia_smi(system: System) -> tuple[list[GpuFacts], str | None]:
    """The GPUs nvidia-smi lists, and why there are none where there are none."""
    out = system.run(NVIDIA_SMI)
    if out is None:
        return [], "nvidia-smi is not on this machine"
    if not out.ok:
        return [], f"nvidia-smi failed: {(out.stderr or out.stdout).strip().splitlines()[-1:] or out.returncode}"
    return parse_nvidia_smi(out.stdout), None


def probe_tensorrt(*, open_gpu: bool) -> tuple[TensorRtFacts, GpuFacts | None]:
    """TensorRT and the CUDA layer; with ``open_gpu`` also GPU 0 through the CUDA layer (name,
    compute capability, SMs, memory, the CUDA runtime). Imports TensorRT and the CUDA layer only
    where they are installed; nothing here raises for a missing one, it is what the report is for."""
    from vitdeploy.tensorrt.compat import import_tensorrt
    from vitdeploy.tensorrt.cuda import cuda_layer_in_use
    from vitdeploy.tensorrt.cuda import open_gpu as open_cuda_gpu

    layer = cuda_layer_in_use()
    version, note = None, "the Python package `tensorrt` is not installed"
    if installed("tensorrt"):
        try:
            version, note = import_tensorrt().__version__, None
        except MissingDependencyError as exc:
            note = exc.what
    if not open_gpu or layer.startswith("none"):
        return TensorRtFacts(version, note, layer), None
    try:
        gpu = open_cuda_gpu(0)
    except VitDeployError as exc:
        return TensorRtFacts(version, note, f"{layer} (no GPU opened: {str(exc).split(';')[0]})"), None
    try:
        info = gpu.info
        facts = TensorRtFacts(version, note, layer, gpu.library_version(), gpu.runtime_version())
        return facts, GpuFacts(name=info.name, compute_capability=info.compute_capability, sm_count=info.sm_count,
                               memory_mib=info.total_memory // (1 << 20), source=layer)
    finally:
        gpu.close()
