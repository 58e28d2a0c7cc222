"""The optional ``recordings`` extra: the MCAP, ROS 2 and protobuf libraries, imported on first use.

``import vitdeploy`` and every command that touches no recording work without them; a command that
does names the install instead of failing on an ``ImportError`` deep inside.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from vitdeploy.errors import MissingDependencyError
from vitdeploy.extras import Extra, install_command

INSTALL_HINT = install_command([Extra.RECORDINGS])

#: module -> the PyPI package that provides it, for the error message
_PACKAGES = {
    "mcap": "mcap",
    "mcap_ros2": "mcap-ros2-support",
    "mcap_protobuf": "mcap-protobuf-support",
    "foxglove_schemas_protobuf": "foxglove-schemas-protobuf",
    "rosbags": "rosbags",
    "google": "protobuf",
}


def load(module: str) -> ModuleType:
    """Import ``module`` (e.g. ``"mcap.reader"``) from the recordings extra, or raise
    ``MissingDependencyError`` naming the package and the install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = _PACKAGES.get(module.split(".")[0], module.split(".")[0])
        raise MissingDependencyError(f"reading and writing recordings needs the Python package `{package}` ({exc})",
                                     install=INSTALL_HINT) from exc
