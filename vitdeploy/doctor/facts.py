"""Everything `vitdeploy doctor` reports, gathered in one pass, with the warnings that follow from it.

``gather()`` reads Python and the library versions, onnxruntime's execution providers, TensorRT and
the CUDA layer, the GPU, a Jetson's release, power mode and clocks, OpenCV and its video backends,
and which vitdeploy commands work here (and which extra each missing one needs). ``vitdeploy bench``
records the same facts in its JSON (``machine.doctor``) and prints the same warnings.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field

import vitdeploy
from vitdeploy.doctor.gpu import GpuFacts, TensorRtFacts, probe_tensorrt, read_nvidia_smi
from vitdeploy.doctor.jetson import JetsonFacts, read_jetson
from vitdeploy.doctor.opencv import OpenCvFacts, probe_opencv
from vitdeploy.doctor.system import System
from vitdeploy.extras import Extra, command_status, install_command, installed
from vitdeploy.runtime.machine import library_versions


@dataclass(frozen=True)
class OnnxRuntimeFacts:
    version: str | None
    providers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Facts:
    """What this machine offers vitdeploy; ``commands``: command -> the extras it lacks here."""

    python: str
    executable: str
    platform: str
    vitdeploy: str
    libraries: dict[str, str]
    onnxruntime: OnnxRuntimeFacts
    tensorrt: TensorRtFacts
    gpus: list[GpuFacts]
    gpu_note: str | None
    jetson: JetsonFacts | None
    opencv: OpenCvFacts
    commands: dict[str, list[Extra]]

    def warnings(self) -> list[str]:
        """What would make a measurement or a rig on this machine go wrong, one sentence each."""
        out = []
        if self.jetson is not None and self.jetson.clocks.locked is False:
            out.append("this Jetson's clocks are not locked (DVFS on): latency moves with load; lock them with "
                       "`sudo jetson_clocks` (and pick the power mode with `sudo nvpmodel -m N`) before measuring")
        elif self.jetson is not None and self.jetson.clocks.locked is None:
            out.append(f"cannot tell whether this Jetson's clocks are locked: {self.jetson.clocks.detail}")
        cv = self.opencv
        if cv.version is None:
            out.append(f"no OpenCV: run, bench and build need it; {install_command([Extra.OPENCV])}")
        elif cv.shadowed:
            out.append(f"OpenCV {cv.version} from {cv.source} hides the OpenCV at {', '.join(cv.shadowed)}; if that "
                       "one is JetPack's (GStreamer, hardware decode), pip uninstall opencv-python-headless")
        if self.jetson is not None and cv.version is not None and not cv.gstreamer:
            out.append("this OpenCV has no GStreamer, so rig cameras cannot use nvv4l2decoder (hardware decode); use "
                       "JetPack's OpenCV (sudo apt install python3-opencv, venv with --system-site-packages)")
        return out

    def to_dict(self) -> dict[str, object]:
        return {"python": self.python, "executable": self.executable, "platform": self.platform,
                "vitdeploy": self.vitdeploy, "libraries": self.libraries,
                "onnxruntime": {"version": self.onnxruntime.version, "providers": self.onnxruntime.providers},
                "tensorrt": self.tensorrt.to_dict(), "gpus": [g.to_dict() for g in self.gpus],
                "gpu_note": self.gpu_note, "jetson": self.jetson.to_dict() if self.jetson else None,
                "opencv": self.opencv.to_dict(),
                "commands": {c: {"works": not lacks, "needs": [e.value for e in lacks],
                                 "install": install_command(lacks) if lacks else None}
                             for c, lacks in self.commands.items()},
                "warnings": self.warnings()}


def _onnxruntime() -> OnnxRuntimeFacts:
    if not installed("onnxruntime"):
        return OnnxRuntimeFacts(None)
    import onnxruntime as ort

    return OnnxRuntimeFacts(ort.__version__, list(ort.get_available_providers()))


def gather(*, system: System | None = None, open_gpu: bool = True) -> Facts:
    """The facts of this machine. ``open_gpu``: also open GPU 0 through the CUDA layer (the doctor
    does; a benchmark, which opens its own, reads nvidia-smi only). ``system``: where files and
    commands are read (tests pass recorded ones)."""
    system = system or System()
    trt, cuda_gpu = probe_tensorrt(open_gpu=open_gpu)
    gpus, note = read_nvidia_smi(system)
    if cuda_gpu is not None and not any(g.compute_capability for g in gpus):
        gpus, note = [cuda_gpu], None  # a Jetson's nvidia-smi knows little; the CUDA layer knows it all
    return Facts(python=platform.python_version(), executable=sys.executable, platform=platform.platform(),
                 vitdeploy=vitdeploy.__version__, libraries=library_versions(), onnxruntime=_onnxruntime(),
                 tensorrt=trt, gpus=gpus, gpu_note=note, jetson=read_jetson(system), opencv=probe_opencv(),
                 commands=command_status())
