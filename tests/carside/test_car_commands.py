"""What a car runs with `pip install vitdeploy` alone: run (synthetic, video and image-folder cameras) on
onnxruntime, bench, info, doctor and build --print-trtexec; export and calibrate name their extras.

On the full install the workstation's libraries are hidden where it matters (``hide``); the import
test runs a child Python, where nothing is hidden, and checks none of them is even loaded.
"""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from vitdeploy.extras import installed

#: What the car side must never load (DESIGN.md: heavy libraries only in the rooms that need them).
WORKSTATION = ("torch", "onnxscript", "modelopt", "matplotlib", "faster_coco_eval", "scipy")


def _frames(path, *, cameras: int = 2) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines and all(len(line["cameras"]) == cameras for line in lines), lines[:1]
    return lines


def _rig(tmp_path, bundle, sources: list[str]) -> str:
    cams = "".join(f'[[cameras]]\nname = "cam{i}"\nsource = "{s}"\nfps = 10\n' for i, s in enumerate(sources))
    rig = tmp_path / "rig.toml"
    rig.write_text(f'rate_hz = 0\n[model]\nbundle = "{bundle}"\nbackend = "onnxruntime"\n'
                   f'[outputs]\ndir = "{tmp_path / "out"}"\nlive = false\n{cams}')
    return str(rig)


def _scene(k: int) -> np.ndarray:
    """A 120x160 BGR frame that changes with k."""
    frame = np.full((120, 160, 3), 40, np.uint8)
    cv2.rectangle(frame, (10 + 4 * k, 30), (60 + 4 * k, 90), (30, 200, 90), -1)
    return frame


def test_run_synthetic_cameras(invoke, car_bundle, tmp_path):
    r = invoke("run", car_bundle, "--synthetic-cameras", 2, "--fps", 0, "--max-frames", 3, "--no-live",
               "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert "on onnxruntime" in r.output and "3 frame sets" in r.output
    assert len(_frames(tmp_path / "out" / "frames.jsonl")) == 3


def test_run_video_cameras(invoke, car_bundle, tmp_path):
    for name in ("a", "b"):
        writer = cv2.VideoWriter(str(tmp_path / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
        for k in range(6):
            writer.write(_scene(k))
        writer.release()
    r = invoke("run", "--rig", _rig(tmp_path, car_bundle, [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]),
               "--max-frames", 4)
    assert r.exit_code == 0, r.output
    assert len(_frames(tmp_path / "out" / "frames.jsonl")) == 4


def test_run_image_folder_cameras(invoke, car_bundle, tmp_path):
    for name in ("left", "right"):
        (tmp_path / name).mkdir()
        for k in range(4):
            cv2.imwrite(str(tmp_path / name / f"{k:04d}.png"), _scene(k))
    r = invoke("run", "--rig", _rig(tmp_path, car_bundle, [str(tmp_path / "left"), str(tmp_path / "right")]),
               "--max-frames", 3)
    assert r.exit_code == 0, r.output
    assert len(_frames(tmp_path / "out" / "frames.jsonl")) == 3


def test_bench_records_the_doctors_facts(invoke, car_bundle, tmp_path):
    out = tmp_path / "bench.json"
    r = invoke("bench", car_bundle, "--backend", "onnxruntime", "--cameras", "1,2", "--warmup", 1, "--iterations", 3,
               "--json", out)
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert [(x["backend"], x["cameras"], x["status"]) for x in report["results"]] == [("onnxruntime", 1, "ok"),
                                                                                    ("onnxruntime", 2, "ok")]
    doctor = report["machine"]["doctor"]
    assert doctor["onnxruntime"]["providers"] and "commands" in doctor and "warnings" in doctor


def test_bench_plans_no_torch_where_there_is_none(invoke, car_bundle, hide):
    from vitdeploy.bundle import Bundle
    from vitdeploy.runtime.configs import default_backends

    hide("torch")
    assert default_backends(Bundle.open(car_bundle)) == ["onnxruntime"]


def test_info(invoke, car_bundle):
    r = invoke("info", car_bundle)
    assert r.exit_code == 0, r.output
    assert "vit-test-detr" in r.output and "cameras 1..6" in r.output


def test_doctor(invoke):
    r = invoke("doctor", "--json")
    assert r.exit_code == 0, r.output
    facts = json.loads(r.output)
    assert facts["python"] == ".".join(map(str, sys.version_info[:3]))
    for command in ("run", "bench", "info", "doctor", "build --print-trtexec"):
        assert facts["commands"][command]["works"], command
    if not installed("torch"):  # the core install: the workstation's commands say what to install
        assert facts["commands"]["export"] == {"works": False, "needs": ["export"],
                                               "install": 'pip install "vitdeploy[export]"'}


def test_build_print_trtexec(invoke, car_bundle):
    r = invoke("build", car_bundle, "--print-trtexec", "--trt-version", "10", "--max-cameras", "6")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("trtexec \\") and "--stronglyTyped" in r.output
    assert "--maxShapes=images:6x3x64x96" in r.output


@pytest.mark.parametrize(("args", "hidden", "extra"), [
    (["export", "vit-test-detr", "--out", "{tmp}/b"], ("torch", "onnxscript"), "export"),
    (["calibrate", "{bundle}", "--precision", "int8"], ("modelopt",), "calibrate"),
])
def test_workstation_commands_name_their_extra(invoke, hide, car_bundle, tmp_path, args, hidden, extra):
    hide(*hidden)
    r = invoke(*[a.replace("{tmp}", str(tmp_path)).replace("{bundle}", str(car_bundle)) for a in args])
    assert r.exit_code == 1
    assert f'install with: pip install "vitdeploy[{extra}]"' in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) <= 3  # one line, maybe wrapped
    assert not (tmp_path / "b").exists() and not (car_bundle / "model.int8.onnx").exists()


_CHILD = """
import json, sys
from typer.testing import CliRunner
import vitdeploy.cli.app
loaded = {"import": sorted(m for m in HEAVY if m in sys.modules)}
result = CliRunner().invoke(vitdeploy.cli.app.app, ARGS)
assert result.exit_code == 0, result.output
loaded["command"] = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("args", [["run", "--help"], ["run", "{bundle}", "--synthetic-cameras", "1", "--fps", "0",
                                                      "--max-frames", "2", "--no-live", "--out", "{tmp}"]])
def test_the_car_side_loads_no_workstation_library(car_bundle, tmp_path, args):
    """Even where torch and the rest are installed, `import vitdeploy.cli.app` and a `vitdeploy run`
    load none of them (a child Python: this test process has them loaded already)."""
    args = [a.replace("{bundle}", str(car_bundle)).replace("{tmp}", str(tmp_path / "out")) for a in args]
    code = _CHILD.replace("HEAVY", repr(WORKSTATION)).replace("ARGS", repr(args))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"import": [], "command": []}
