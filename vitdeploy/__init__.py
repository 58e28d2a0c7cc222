"""vitdeploy: ship Vision Transformer perception models from PyTorch to TensorRT on the car.

Importing the package pulls in nothing heavy: torch, onnx, TensorRT and pycuda are imported by the
modules that need them (TensorRT and pycuda only when an engine is built or run).
"""

from vitdeploy.errors import VitDeployError

__version__ = "0.1.0"
__all__ = ["VitDeployError", "__version__"]
