"""Every TensorRT name the builder and backend use exists in TensorRT 10.x and 11.x (or is gated).

The surfaces in data/ were recorded from the ``tensorrt-cu12-bindings`` wheels of the first and the
latest release of each generation (TensorRT removes API only at a major version, so a name in the
first 11.x and the latest 11.x is in every 11.x) by tools/trt_api_surface.py:

    python tools/trt_api_surface.py 10.3.0 --out tests/tensorrt/data/trt-10.3.0.json

The list of names the code uses lives in one place, ``vitdeploy.tensorrt.compat``; the last two
tests keep that list honest by reading the code that calls TensorRT.
"""

import ast
import json
from pathlib import Path

import pytest

import vitdeploy
from vitdeploy.tensorrt.compat import SUPPORTED_MAJORS, TRT_NAMES, TRT_NAMES_BY_MAJOR

DATA = Path(__file__).parent / "data"
SURFACES = sorted(DATA.glob("trt-*.json"))
PACKAGE = Path(vitdeploy.__file__).parent
#: The modules that call TensorRT.
TRT_MODULES = [PACKAGE / "tensorrt/builder.py", PACKAGE / "tensorrt/runner.py", PACKAGE / "tensorrt/compat.py"]
#: Attributes these modules use that TensorRT classes happen to have too, and what they are here.
NOT_TENSORRT = {
    "append": "list.append", "update": "dict.update", "value": "Precision/Status enum values",
    "parse": "Precision.parse", "dtype": "numpy dtypes of host buffers", "nbytes": "numpy array size",
    "file": "Engine.file (manifest)", "precision": "Engine.precision (manifest)",
    "tensorrt_version": "Machine/Engine provenance", "pop": "pycuda Context.pop", "count": "pycuda Device.count",
    "destroy": "CUDA-layer streams and events", "read": "EngineMemory.read (host buffers)",
    "release": "EngineMemory.release",
}
GATED = [name for names in TRT_NAMES_BY_MAJOR.values() for name in names]


def _surface(path: Path) -> tuple[str, int, set[str]]:
    data = json.loads(path.read_text())
    names = set(data["module"])
    for cls, members in data["classes"].items():
        names.add(cls)
        names.update(f"{cls}.{m}" for m in members)
    version = data["tensorrt_version"]
    return version, int(version.split(".")[0]), names


def test_both_generations_are_recorded():
    majors = {_surface(p)[1] for p in SURFACES}
    assert set(SUPPORTED_MAJORS) <= majors, f"record a surface for each of {SUPPORTED_MAJORS}; have {majors}"


@pytest.mark.parametrize("path", SURFACES, ids=lambda p: p.stem)
def test_every_name_the_code_uses_exists(path):
    version, major, names = _surface(path)
    missing = [n for n in TRT_NAMES if n not in names]
    assert not missing, f"TensorRT {version} lacks {missing}; use another API or put it behind a version check"
    gated_missing = [n for n in TRT_NAMES_BY_MAJOR.get(major, ()) if n not in names]
    assert not gated_missing, f"TensorRT {version} lacks {gated_missing}, used on {major}.x"


def test_the_surfaces_tell_the_generations_apart():
    """The check can fail: names 11.x removed are in the 10.x surfaces only."""
    for path in SURFACES:
        version, major, names = _surface(path)
        for removed in ("BuilderFlag.FP16", "BuilderFlag.INT8", "IBuilderConfig.int8_calibrator",
                        "ICudaEngine.device_memory_size"):
            assert (removed in names) == (major == 10), (version, removed)
        assert "NetworkDefinitionCreationFlag.EXPLICIT_BATCH" in names or major == 11


def test_removed_names_are_not_used():
    used = set(TRT_NAMES) | set(GATED)
    assert not {"BuilderFlag.FP16", "BuilderFlag.INT8", "IBuilderConfig.int8_calibrator"} & used


def _trt_chains(tree: ast.AST) -> set[str]:
    """'X' and 'X.Y' for every ``trt.X`` / ``trt.X.Y`` in the code."""
    chains = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        parts = [node.attr]
        value = node.value
        while isinstance(value, ast.Attribute):
            parts.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id == "trt":
            chains.add(".".join(reversed(parts)))
    return {".".join(c.split(".")[:2]) for c in chains}


@pytest.mark.parametrize("module", TRT_MODULES, ids=lambda p: p.name)
def test_module_level_names_in_the_code_are_listed(module):
    chains = _trt_chains(ast.parse(module.read_text()))
    assert chains, f"{module.name} uses no trt.X name; is it still the module that calls TensorRT?"
    listed = {*TRT_NAMES, *GATED}
    listed |= {n.split(".")[0] for n in listed}  # trt.X.Y also reads trt.X
    unlisted = sorted(c for c in chains - listed if not c.split(".")[-1].startswith("__"))  # ILogger.__init__
    assert not unlisted, f"{module.name} uses {unlisted}; add them to compat.TRT_NAMES (or TRT_NAMES_BY_MAJOR)"


@pytest.mark.parametrize("module", TRT_MODULES, ids=lambda p: p.name)
def test_methods_called_on_tensorrt_objects_are_listed(module):
    trt_members = set()
    for path in SURFACES:
        for members in json.loads(path.read_text())["classes"].values():
            trt_members.update(members)
    listed = {n.split(".", 1)[1] for n in [*TRT_NAMES, *GATED] if "." in n}
    attrs = {node.attr for node in ast.walk(ast.parse(module.read_text())) if isinstance(node, ast.Attribute)}
    unlisted = sorted((attrs & trt_members) - listed - set(NOT_TENSORRT))
    assert not unlisted, (f"{module.name} uses {unlisted}, which TensorRT classes have; list them in "
                          f"compat.TRT_NAMES as Class.member, or in NOT_TENSORRT here if they are not TensorRT")
