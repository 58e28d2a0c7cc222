"""Which optional library each command needs, which extra brings it, and the one message when it is missing.

``pip install vitdeploy`` is the car side: ``run``, ``bench``, ``info``, ``build`` (with the system's
TensorRT) and ``doctor`` on numpy, onnxruntime, typer and rich. The workstation's work comes in extras
(pyproject.toml). A command checks its extras before it imports anything from them (``require``),
so a missing one is a one-line ``MissingExtraError`` that names the install, not an ``ImportError``
deep inside; ``vitdeploy doctor`` lists what works here from the same table (``command_status``).

OpenCV is the one library the car side needs but does not depend on: pip's ``opencv-python-headless``
would shadow a Jetson's own OpenCV, the one JetPack builds with GStreamer (``nvv4l2decoder``, the
hardware video decoder). An installed ``cv2`` is used, wherever it comes from; the ``opencv`` extra
brings one to machines that have none.
"""

from __future__ import annotations

import enum
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from vitdeploy.errors import MissingDependencyError


class Extra(str, enum.Enum):
    """The extras of pyproject.toml that commands need (``all`` and ``dev`` are only bundles of them)."""

    EXPORT = "export"
    CALIBRATE = "calibrate"
    EVAL = "eval"
    PLOTS = "plots"
    TENSORRT = "tensorrt"
    RECORDINGS = "recordings"
    OPENCV = "opencv"
    REPLAY = "replay"


@dataclass(frozen=True)
class Library:
    """A library an extra brings: ``modules`` are top-level module names, any one of which will do
    (the CUDA layer is pycuda or cuda-python); ``name`` is what people call it."""

    name: str
    modules: tuple[str, ...]


#: What each extra brings that vitdeploy imports (the packages only ModelOpt imports are its business).
LIBRARIES: dict[Extra, tuple[Library, ...]] = {
    Extra.EXPORT: (Library("torch", ("torch",)), Library("onnx", ("onnx",)), Library("onnxscript", ("onnxscript",)),
                   Library("safetensors", ("safetensors",))),
    # task agreement of detection heads is a COCO mAP, hence faster-coco-eval
    Extra.CALIBRATE: (Library("nvidia-modelopt", ("modelopt",)), Library("onnx", ("onnx",)),
                      Library("faster-coco-eval", ("faster_coco_eval",))),
    Extra.EVAL: (Library("faster-coco-eval", ("faster_coco_eval",)),),
    Extra.PLOTS: (Library("matplotlib", ("matplotlib",)),),
    Extra.TENSORRT: (Library("TensorRT", ("tensorrt",)), Library("a CUDA layer (pycuda or cuda-python)", ("pycuda", "cuda"))),
    Extra.RECORDINGS: (Library("mcap", ("mcap",)), Library("mcap-ros2-support", ("mcap_ros2",)),
                       Library("mcap-protobuf-support", ("mcap_protobuf",)),
                       Library("foxglove-schemas-protobuf", ("foxglove_schemas_protobuf",)),
                       Library("rosbags", ("rosbags",))),
    Extra.OPENCV: (Library("OpenCV", ("cv2",)),),
    Extra.REPLAY: (Library("Ray", ("ray",)),),
}

#: The extras each command needs whatever its options (an option that needs more checks for itself:
#: ``bench --plot``, ``run --backend torch``; ``build --print-trtexec`` needs none of build's).
COMMANDS: dict[str, tuple[Extra, ...]] = {
    "run": (Extra.OPENCV,),
    "record": (Extra.OPENCV, Extra.RECORDINGS),
    "bench": (Extra.OPENCV,),
    "info": (),
    "build": (Extra.TENSORRT, Extra.OPENCV),  # OpenCV: the golden check preprocesses photographs
    "build --print-trtexec": (),
    "doctor": (),
    "export": (Extra.EXPORT, Extra.OPENCV),
    "calibrate": (Extra.CALIBRATE, Extra.OPENCV),
    "eval": (Extra.EVAL, Extra.OPENCV),
    "demo": (Extra.EXPORT, Extra.CALIBRATE, Extra.EVAL, Extra.OPENCV),
    "models": (Extra.EXPORT,),
    "data synth": (Extra.OPENCV, Extra.EVAL),  # faster-coco-eval encodes the masks of the COCO file
    "data info": (Extra.RECORDINGS,),
    # agreement and mAP are COCO AP (faster-coco-eval); Ray is checked when a replay runs on it
    "replay": (Extra.OPENCV, Extra.EVAL),
}

_JETPACK_OPENCV = ("on a Jetson, JetPack's OpenCV instead, built with GStreamer and the nvv4l2decoder hardware decoder: "
                   "sudo apt install python3-opencv, in a venv made with --system-site-packages")
_JETPACK_TENSORRT = ("TensorRT and cuda-python; on Jetson or DRIVE, the TensorRT of JetPack/DriveOS instead: apt install "
                     "python3-libnvinfer, then pip install cuda-python, or pycuda on JetPack 6")


def installed(module: str) -> bool:
    """Whether top-level ``module`` can be imported here, without importing it. A module set to None
    in ``sys.modules`` (how tests hide one) counts as missing."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_libraries(extra: Extra) -> list[Library]:
    """The libraries of ``extra`` that are not installed here."""
    return [lib for lib in LIBRARIES[extra] if not any(installed(m) for m in lib.modules)]


def install_command(extras: Iterable[Extra]) -> str:
    """'pip install "vitdeploy[export,eval]"', with the JetPack way for OpenCV and TensorRT."""
    chosen = list(dict.fromkeys(extras))
    command = f'pip install "vitdeploy[{",".join(e.value for e in chosen)}]"'
    notes = [_JETPACK_TENSORRT] if Extra.TENSORRT in chosen else []
    notes += [_JETPACK_OPENCV] if Extra.OPENCV in chosen else []
    return command + "".join(f" ({note})" for note in notes)


class MissingExtraError(MissingDependencyError):
    """Something a command needs is not installed: names the libraries and the extras that bring them."""

    def __init__(self, *, needed_by: str, missing: dict[Extra, list[Library]]):
        names = list(dict.fromkeys(lib.name for libs in missing.values() for lib in libs))
        what = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        extras = [e.value for e in missing]
        extras_text = ", ".join(extras[:-1]) + f" and {extras[-1]}" if len(extras) > 1 else extras[0]
        install = install_command(missing)
        Exception.__init__(self, f"{needed_by} needs {what} from the {extras_text} extra{'s' * (len(extras) > 1)}, "
                                 f"which {'are' if len(names) > 1 else 'is'} not installed; install with: {install}")
        self.what, self.install, self.missing = what, install, missing


def require(*extras: Extra, needed_by: str) -> None:
    """Raise ``MissingExtraError`` unless every library of ``extras`` is installed; ``needed_by``
    says who asks, e.g. "`vitdeploy export`" or "the torch backend"."""
    missing = {e: libs for e in dict.fromkeys(extras) if (libs := missing_libraries(e))}
    if missing:
        raise MissingExtraError(needed_by=needed_by, missing=missing)


def require_command(command: str) -> None:
    """``require`` the extras ``COMMANDS`` lists for ``command`` ("run", "data synth")."""
    require(*COMMANDS[command], needed_by=f"`vitdeploy {command}`")


def command_status() -> dict[str, list[Extra]]:
    """Command -> the extras it lacks here (empty: it works), in ``COMMANDS`` order."""
    return {command: [e for e in extras if missing_libraries(e)] for command, extras in COMMANDS.items()}


def error_for_missing_module(exc: ModuleNotFoundError, *, needed_by: str) -> MissingExtraError | None:
    """The ``MissingExtraError`` for an import that failed on a library an extra brings (a path the
    up-front checks did not foresee), or None when the module is none of theirs."""
    top = (exc.name or "").split(".")[0]
    for extra, libs in LIBRARIES.items():
        for lib in libs:
            if top in lib.modules:
                return MissingExtraError(needed_by=needed_by, missing={extra: [lib]})
    return None
