"""`vitdeploy doctor`: what this machine offers vitdeploy (Python, libraries, onnxruntime providers,
TensorRT and the CUDA layer, the GPU, a Jetson's release, power mode and clocks, OpenCV's video
backends) and which commands work here. ``gather()`` is the one entry point; ``vitdeploy bench``
records its facts too."""

from vitdeploy.doctor.facts import Facts, gather
from vitdeploy.doctor.system import CommandOutput, System

__all__ = ["CommandOutput", "Facts", "System", "gather"]
