"""Record the Python API surface of a TensorRT release as JSON, without TensorRT or a GPU.

The ``tensorrt-cu12-bindings`` wheel (about 1.3 MB per release) holds only the pybind11 module;
the real work is in libnvinfer, libnvinfer_plugin and libnvonnxparser, which it links against.
The module imports when those libraries exist, and the few entry points it resolves at load time
(``createInferBuilder_INTERNAL`` and friends) exist, so this script compiles empty stand-ins
with ``gcc`` that return null, puts them on LD_LIBRARY_PATH and lists every public class with
its members (enums included) in a child process. Nothing in TensorRT is ever called.

The JSON files it writes are checked in under tests/tensorrt/data/, so the API-surface
test (tests/tensorrt/test_api_surface.py) runs in CI without downloading anything.

    python tools/trt_api_surface.py 10.3.0 --out tests/tensorrt/data/trt10_api.json
    python tools/trt_api_surface.py 11.0.0.114 --out tests/tensorrt/data/trt11_api.json
    python tools/trt_api_surface.py path/to/tensorrt_cu12_bindings-*.whl --out ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# Symbols the bindings resolve when the module is loaded. They are never called here.
_STUB_SOURCE = """
void *createInferBuilder_INTERNAL(void *logger, int version) { return 0; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return 0; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return 0; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return 0; }
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
void *getBuilderPluginRegistry(int capability) { return 0; }
void *getPluginRegistry(void) { return 0; }
int initLibNvInferPlugins(void *logger, const char *ns) { return 0; }
"""

_LIBRARIES = ("nvinfer", "nvinfer_plugin", "nvonnxparser")

# Runs inside the child interpreter, where the stubs are on LD_LIBRARY_PATH.
_DUMP = r"""
import inspect, json, sys
import tensorrt_bindings as trt

classes = {}
for name in sorted(dir(trt)):
    if name.startswith("_"):
        continue
    obj = getattr(trt, name)
    if inspect.isclass(obj):
        members = set(n for n in dir(obj) if not n.startswith("_"))
        members.update(getattr(obj, "__members__", {}))
        classes[name] = sorted(members)
module = sorted(n for n in dir(trt) if (not n.startswith("_") or n == "__version__")
                and not inspect.isclass(getattr(trt, n)) and not inspect.ismodule(getattr(trt, n)))
json.dump({"tensorrt_version": trt.__version__, "module": module, "classes": classes}, sys.stdout)
"""


def _download(version: str, into: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(into),
                    f"tensorrt-cu12-bindings=={version}"], check=True)
    wheels = sorted(into.glob("tensorrt_cu12_bindings-*.whl"))
    if not wheels:
        raise SystemExit(f"pip downloaded no tensorrt-cu12-bindings wheel for {version}")
    return wheels[0]


def _major(wheel: Path) -> int:
    # tensorrt_cu12_bindings-10.3.0-cp311-none-manylinux_2_17_x86_64.whl
    return int(wheel.name.split("-")[1].split(".")[0])


def _stubs(major: int, into: Path) -> Path:
    src = into / "stub.c"
    src.write_text(_STUB_SOURCE)
    lib_dir = into / "stubs"
    lib_dir.mkdir()
    for lib in _LIBRARIES:
        soname = f"lib{lib}.so.{major}"
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib_dir / soname), str(src), f"-Wl,-soname,{soname}"],
                       check=True)
    return lib_dir


def surface(wheel_or_version: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="trt-api-") as tmp:
        tmp_path = Path(tmp)
        wheel = Path(wheel_or_version)
        if not wheel.is_file():
            wheel = _download(wheel_or_version, tmp_path)
        site = tmp_path / "site"
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(site)
        libs = _stubs(_major(wheel), tmp_path)
        env = dict(os.environ, PYTHONPATH=str(site),
                   LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(libs), os.environ.get("LD_LIBRARY_PATH")])))
        out = subprocess.run([sys.executable, "-c", _DUMP], env=env, check=True, capture_output=True, text=True)
        data = json.loads(out.stdout)
    data["source"] = f"tensorrt-cu12-bindings {data['tensorrt_version']} ({wheel.name})"
    return data


def write(data: dict, out: Path) -> None:
    # One class per line keeps the diff between two releases readable.
    lines = ["{",
             f'  "tensorrt_version": {json.dumps(data["tensorrt_version"])},',
             f'  "source": {json.dumps(data["source"])},',
             f'  "module": {json.dumps(data["module"])},',
             '  "classes": {']
    items = sorted(data["classes"].items())
    for i, (name, members) in enumerate(items):
        lines.append(f"    {json.dumps(name)}: {json.dumps(members)}{',' if i < len(items) - 1 else ''}")
    lines += ["  }", "}"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("release", help="a tensorrt-cu12-bindings version (e.g. 10.3.0) or a downloaded wheel")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    data = surface(args.release)
    write(data, args.out)
    print(f"{args.out}: TensorRT {data['tensorrt_version']}, {len(data['classes'])} classes")


if __name__ == "__main__":
    main()
