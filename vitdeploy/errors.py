"""The exception types of vitdeploy.

Library code raises these with a message that says what was wrong and what would be right; only
``vitdeploy.cli`` turns them into an exit code.
"""


class VitDeployError(Exception):
    """Base class: a problem the user can act on (bad input, missing file, failed check)."""


class ModelNotFoundError(VitDeployError):
    """An unknown model name."""


class CheckpointError(VitDeployError):
    """A checkpoint that is missing, unreadable, or does not fit the model."""


class BundleError(VitDeployError):
    """A bundle folder or manifest that is missing, corrupt or inconsistent."""


class ExportError(VitDeployError):
    """torch -> ONNX export failed or produced a graph that fails its checks."""


class ParityError(ExportError):
    """ONNX Runtime disagrees with PyTorch beyond the tolerance."""


class DataError(VitDeployError):
    """Calibration/evaluation/camera data that cannot be read or has the wrong shape."""


class BackendError(VitDeployError):
    """An inference backend that cannot be created or was fed the wrong inputs."""


class MissingDependencyError(VitDeployError):
    """An optional dependency (TensorRT, pycuda, a GPU) is not available."""

    def __init__(self, what: str, *, install: str):
        super().__init__(f"{what} is not available; install it with: {install}")
        self.what = what
        self.install = install


class CalibrationError(VitDeployError):
    """Quantization or mixed-precision conversion failed, or was asked for something it cannot do."""


class RigConfigError(VitDeployError):
    """A malformed rig file."""
