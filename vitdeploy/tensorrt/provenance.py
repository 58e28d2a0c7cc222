"""Which machine a TensorRT plan belongs to, and whether it may run on this one (DESIGN.md decision 4).

A plan is compiled for one TensorRT release and one GPU. Loading it anywhere else fails deep
inside TensorRT (or, worse, loads and runs slowly), so the builder records the machine in the
manifest's ``Engine`` record and the tensorrt backend compares that record with the running machine
*before* it deserializes anything. This module is the pure part of that: no TensorRT, no CUDA.

Plans are named ``<graph>.<precision>.<gpu>.plan`` — ``model.fp16.orin-sm87.plan`` — so one bundle
can carry engines for several targets side by side and a reader can tell them apart by name.
"""

from __future__ import annotations

import enum
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from vitdeploy.bundle.manifest import CAMERA_AXIS, Engine, Precision
from vitdeploy.errors import BackendError

# Words in a CUDA device name that say nothing about the chip.
_NOISE = {"nvidia", "geforce", "tesla", "quadro", "jetson", "graphics", "gpu"}
# Version-compatible plans also run on these later generations (TensorRT's support matrix).
_CROSS_MAJOR = {(10, 11)}


class EngineMismatchError(BackendError):
    """A plan built for another TensorRT, CUDA or GPU than the one it is asked to run on."""


@dataclass(frozen=True)
class Machine:
    """The TensorRT, CUDA and GPU that build or run a plan.

    Every Jetson Orin module reports the GPU name "Orin" and compute capability 8.7, so the SM count
    and the memory the GPU may use are what tell an AGX Orin (16 SMs, 64 GB) from an Orin NX (8 SMs,
    16 GB); None where a record predates them.
    """

    tensorrt_version: str  # e.g. "10.3.0.30"
    cuda_version: str  # the CUDA runtime the process runs on, e.g. "12.6"
    gpu_name: str  # as CUDA reports it, e.g. "Orin" or "NVIDIA H100 80GB HBM3"
    compute_capability: str  # "major.minor", e.g. "8.7"
    sm_count: int | None = None  # multiProcessorCount
    memory_mib: int | None = None  # total memory the GPU may use, MiB (Jetson: the shared DRAM)

    @property
    def gpu_slug(self) -> str:
        return gpu_slug(self.gpu_name, self.compute_capability)

    @classmethod
    def of(cls, engine: Engine) -> Machine:
        """The machine an engine record says its plan was built on."""
        return cls(engine.tensorrt_version, engine.cuda_version, engine.gpu_name, engine.compute_capability,
                   sm_count=engine.sm_count, memory_mib=engine.gpu_memory_mib)

    def describe(self) -> str:
        """'Orin (sm 8.7, 16 SMs, 61.4 GiB)'."""
        extra = [f"sm {self.compute_capability}"]
        if self.sm_count is not None:
            extra.append(f"{self.sm_count} SMs")
        if self.memory_mib is not None:
            extra.append(f"{self.memory_mib / 1024:.1f} GiB")
        return f"{self.gpu_name} ({', '.join(extra)})"


def gpu_slug(gpu_name: str, compute_capability: str) -> str:
    """A short file-name-safe name of a GPU: ``("Orin", "8.7") -> "orin-sm87"``,
    ``("NVIDIA H100 80GB HBM3", "9.0") -> "h100-sm90"``, ``("NVIDIA GeForce RTX 4090", "8.9") -> "rtx4090-sm89"``.

    The chip name is the words up to the first one with a digit in it (memory size and form factor
    come after it); the compute capability is what decides whether a plan can run at all.
    """
    words = [w for w in re.split(r"[^a-z0-9]+", gpu_name.lower()) if w and w not in _NOISE]
    chip: list[str] = []
    for word in words:
        chip.append(word)
        if any(c.isdigit() for c in word):
            break
    if not any(any(c.isdigit() for c in w) for w in chip):
        chip = words[:1]  # "Orin (nvgpu)": no model number, the first word is the chip
    sm = re.sub(r"[^0-9]", "", compute_capability)
    return f"{''.join(chip) or 'gpu'}-sm{sm}"


def plan_file_name(graph: str, precision: Precision | str, slug: str, *, dla_core: int | None = None) -> str:
    """``model.fp16.orin-sm87.plan``; a DLA engine gets ``-dla<core>`` after the GPU slug."""
    p = Precision.parse(precision).value
    return f"{graph}.{p}.{slug}{'' if dla_core is None else f'-dla{dla_core}'}.plan"


def release(version: str) -> tuple[int, ...]:
    """'10.3.0.30' -> (10, 3, 0, 30); a pip suffix such as '.post1' is packaging, not TensorRT."""
    parts = []
    for piece in version.split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def tensorrt_release(version: str) -> tuple[int, int, int]:
    """major.minor.patch of a TensorRT version: '10.3.0.30' and '10.3.0' are the same release (the
    fourth number is the build, which pip's version of the wheel may leave out)."""
    parts = release(version) + (0, 0, 0)
    return parts[0], parts[1], parts[2]


def tensorrt_can_run(*, built: str, running: str, version_compatible: bool) -> bool:
    """Whether TensorRT ``running`` can deserialize a plan made by TensorRT ``built``.

    A plain plan needs the very same release (major.minor.patch). A plan built with the
    version-compatible flag carries its own lean runtime and runs on the same or a later release of
    its major version, and a 10.x one also on 11.x.
    """
    b, r = tensorrt_release(built), tensorrt_release(running)
    if not version_compatible:
        return b == r
    if r < b:
        return False
    return b[:1] == r[:1] or (b[:1] + r[:1]) in _CROSS_MAJOR


class MismatchKind(str, enum.Enum):
    TENSORRT = "TensorRT"
    CUDA = "CUDA"
    COMPUTE_CAPABILITY = "compute capability"
    GPU = "GPU"
    GPU_MODULE = "GPU module"  # same chip name and compute capability, other SM count or memory


#: Memory sizes closer than this share are the same module: CUDA reports a Jetson's DRAM less what
#: the kernel and carveouts reserve, which varies by a few per cent between JetPack releases.
MEMORY_TOLERANCE = 0.10


@dataclass(frozen=True)
class Mismatch:
    kind: MismatchKind
    built: str
    running: str

    def __str__(self) -> str:
        return f"{self.kind.value}: plan built with {self.built}, this machine has {self.running}"


def check_provenance(engine: Engine, machine: Machine) -> list[Mismatch]:
    """Every way ``machine`` differs from where ``engine``'s plan was built, in the order that
    matters (an empty list: the plan may be loaded).

    CUDA must agree on the major version only: TensorRT releases are built per CUDA major, and a
    newer minor runtime runs what an older one made. Two GPUs with the same compute capability but
    a different name, or the same name but another SM count or memory size (an AGX Orin plan on an
    Orin NX: both say "Orin", sm 8.7), would load with only a warning from TensorRT ("different
    models of devices"), but its kernels were chosen for the other module, so that is refused too.
    """
    version_compatible = bool(engine.version_compatible)
    found = []
    if not tensorrt_can_run(built=engine.tensorrt_version, running=machine.tensorrt_version,
                            version_compatible=version_compatible):
        found.append(Mismatch(MismatchKind.TENSORRT, engine.tensorrt_version, machine.tensorrt_version))
    if release(engine.cuda_version)[:1] != release(machine.cuda_version)[:1]:
        found.append(Mismatch(MismatchKind.CUDA, engine.cuda_version, machine.cuda_version))
    if engine.compute_capability != machine.compute_capability:
        found.append(Mismatch(MismatchKind.COMPUTE_CAPABILITY, f"sm {engine.compute_capability} ({engine.gpu_name})",
                              f"sm {machine.compute_capability} ({machine.gpu_name})"))
    elif engine.gpu_name != machine.gpu_name:
        found.append(Mismatch(MismatchKind.GPU, engine.gpu_name, machine.gpu_name))
    elif _other_module(Machine.of(engine), machine):
        found.append(Mismatch(MismatchKind.GPU_MODULE, Machine.of(engine).describe(),
                              f"{machine.describe()}: another module with the same chip (e.g. an AGX Orin plan "
                              f"on an Orin NX), which TensorRT only warns about and which can fail at run time"))
    return found


def _other_module(built: Machine, running: Machine) -> bool:
    """Same chip name and compute capability, but another SM count or memory size (where both
    sides recorded them)."""
    if None not in (built.sm_count, running.sm_count) and built.sm_count != running.sm_count:
        return True
    if None in (built.memory_mib, running.memory_mib):
        return False
    return abs(built.memory_mib - running.memory_mib) > MEMORY_TOLERANCE * max(built.memory_mib, running.memory_mib)


def rebuild_command(bundle_path: str | Path, engine: Engine) -> str:
    """The ``vitdeploy build`` line that makes ``engine`` again for the machine it runs on."""
    args = ["vitdeploy", "build", str(bundle_path)]
    if engine.precision is not Precision.FP32:
        args.append(f"--{engine.precision.value}")
    if engine.graph != "model":
        args += ["--graph", engine.graph]
    cameras = engine.profile.get(CAMERA_AXIS)
    if cameras:
        lo, opt, hi = cameras
        args += ["--min-cameras", str(lo), "--opt-cameras", str(opt), "--max-cameras", str(hi)]
    for dim, (lo, opt, hi) in engine.profile.items():
        if dim != CAMERA_AXIS:
            args += ["--dim", f"{dim}={lo}:{opt}:{hi}"]
    if engine.dla_core is not None:
        args += ["--dla-core", str(engine.dla_core)]
    if engine.version_compatible:
        args.append("--version-compatible")
    return shlex.join(args)


def ensure_runnable(engine: Engine, machine: Machine, *, bundle_path: str | Path) -> None:
    """Raise ``EngineMismatchError`` naming both sides and the rebuild command unless ``engine``
    may be loaded on ``machine``."""
    mismatches = check_provenance(engine, machine)
    if not mismatches:
        return
    lines = "; ".join(str(m) for m in mismatches)
    raise EngineMismatchError(
        f"engine {engine.file} does not fit this machine ({lines}); rebuild it here with: "
        f"{rebuild_command(bundle_path, engine)}"
    )
