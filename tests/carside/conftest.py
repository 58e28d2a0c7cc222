"""The car side: what `pip install vitdeploy` alone must run. These tests (and tests/doctor) import
nothing beyond the core install and OpenCV at module level; CI runs them on Python 3.10 in a venv
with the core install only (.ci/run), and on the full install with everything else.

``car_bundle`` is a fresh copy of a small exported bundle (vit-test-detr, cameras 1..6): from the
folder ``VITDEPLOY_CAR_BUNDLE`` names (CI exports it with the full install, since the core install
cannot export), else exported here (needs the export extra).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vitdeploy.extras import installed

BUNDLE_ENV = "VITDEPLOY_CAR_BUNDLE"


@pytest.fixture(scope="session")
def car_bundle_source(request) -> Path:
    given = os.environ.get(BUNDLE_ENV)
    if given:
        if not (Path(given) / "manifest.json").is_file():
            pytest.fail(f"{BUNDLE_ENV}={given} is not a bundle folder (no manifest.json)")
        return Path(given)
    if not installed("torch"):
        pytest.fail(f"the car-side tests need a bundle: set {BUNDLE_ENV} to one exported with the full install "
                    "(vitdeploy export vit-test-detr --out DIR --max-cameras 6), or install vitdeploy[export]")
    return request.getfixturevalue("exported")("vit-test-detr", max_cameras=6).path


@pytest.fixture
def car_bundle(car_bundle_source, tmp_path) -> Path:
    """A copy of the car-side bundle this test may change."""
    return Path(shutil.copytree(car_bundle_source, tmp_path / "bundle"))
