"""Shared fixtures. Exported test bundles are cached per session: exporting takes seconds.

``exported(name, **options)`` is a session-cached export (read it, do not change it); ``bundle`` a
fresh copy of the random-weight vit-test-detr bundle a test may change; ``rig3d_bundle`` the
rig-level vit-test-rig3d with confident weights; ``invoke(*args)`` runs the
CLI; ``unchanged(folder)`` asserts a command left a folder exactly as it was; ``hide(*modules)``
makes modules look uninstalled. Nothing here imports torch unless it is installed: tests/carside
and tests/doctor run on the core (car-side) install too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from vitdeploy.extras import installed

if installed("torch"):  # the car-side tests (tests/carside, tests/doctor) also run on a core install, without it
    import torch

    # Two cores in CI: one intra-op thread per test process keeps timings stable and avoids
    # oversubscription when onnxruntime and torch run side by side.
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """exported(name, checkpoint=None, **options) -> Bundle, exported once per session and argument
    set; ``options`` are ``ExportOptions`` fields."""
    from vitdeploy.exporter.export import ExportOptions, export_model

    cache: dict = {}

    def get(name: str, *, checkpoint=None, **options):
        key = (name, checkpoint, tuple(sorted(options.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(name.replace("-", "_"))
            options = ExportOptions(**options)
            # Random weights from a fixed seed: the same bundle whichever tests ran first (tests that
            # say "random weights detect nothing" once saw 5 boxes after other tests used the RNG).
            with torch.random.fork_rng():
                torch.manual_seed(0)
                cache[key] = export_model(name, out=out, checkpoint=checkpoint, options=options).bundle
        return cache[key]

    return get


@pytest.fixture(scope="session")
def rig3d_checkpoint(tmp_path_factory) -> Path:
    """A vit-test-rig3d checkpoint whose every query answers "car" with a probability of about 0.95
    (random weights, the class bias raised): confident FP32 boxes in the ego frame, which a 3D
    agreement or accuracy measurement needs (untrained random weights are confident in nothing)."""
    from vitdeploy.models.zoo import build_model

    torch.manual_seed(0)
    model = build_model("vit-test-rig3d")
    with torch.no_grad():
        model.head.class_embed.bias.zero_()
        model.head.class_embed.bias[0] = 6.0
    path = tmp_path_factory.mktemp("rig3d_checkpoint") / "confident.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def rig3d_bundle(exported, rig3d_checkpoint):
    """The exported vit-test-rig3d with ``rig3d_checkpoint``'s weights (read it, do not change it)."""
    return exported("vit-test-rig3d", checkpoint=rig3d_checkpoint)


@pytest.fixture
def bundle_copy(tmp_path):
    """bundle_copy(src) -> a copy of bundle ``src`` in the test's temporary folder, opened: a bundle
    the test may change (calibrate, build) without touching the session's cached export."""
    from vitdeploy.bundle import Bundle

    def copy(src):
        dst = tmp_path / f"bundle{len(list(tmp_path.glob('bundle*')))}"
        shutil.copytree(src.path, dst)
        return Bundle.open(dst)

    return copy


@pytest.fixture
def bundle(request, exported, bundle_copy):
    """A fresh copy of the exported random-weight vit-test-detr bundle, the test's own to change;
    cameras 1..6, or 1..``BUNDLE_CAMERAS`` where the test module sets that."""
    return bundle_copy(exported("vit-test-detr", max_cameras=getattr(request.module, "BUNDLE_CAMERAS", 6)))


@pytest.fixture
def invoke():
    """invoke(*args) -> click's Result of `vitdeploy ARGS` (arguments turned into strings)."""
    from typer.testing import CliRunner

    from vitdeploy.cli.app import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) -> sha256: what 'unchanged' means."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def unchanged():
    """``with unchanged(folder): ...`` fails the test if the block adds, removes or changes any file."""

    @contextlib.contextmanager
    def check(folder):
        before = snapshot(folder)
        yield
        assert snapshot(folder) == before, f"{folder} changed"

    return check


@pytest.fixture
def hide(monkeypatch):
    """hide(*modules): make ``import MODULE`` fail and ``vitdeploy.extras.installed`` say no, as on a
    machine without them (a no-op for a module that is not installed anyway)."""

    def hide_modules(*modules: str) -> None:
        for name in modules:
            monkeypatch.setitem(sys.modules, name, None)

    return hide_modules


@pytest.fixture
def no_tensorrt(monkeypatch):
    """Make `import tensorrt` and both CUDA layers (pycuda, cuda-python) fail even where installed."""
    for name in ("tensorrt", "pycuda", "pycuda.driver", "cuda", "cuda.bindings", "cuda.bindings.runtime"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture(scope="session")
def tensorrt_gpu():
    """The tensorrt module on a machine with TensorRT, a CUDA layer and a CUDA GPU; skips elsewhere."""
    from vitdeploy.errors import MissingDependencyError
    from vitdeploy.tensorrt.compat import import_tensorrt
    from vitdeploy.tensorrt.cuda import open_gpu

    try:
        trt = import_tensorrt()
        open_gpu(0).close()
    except MissingDependencyError as exc:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {exc}")
    return trt
