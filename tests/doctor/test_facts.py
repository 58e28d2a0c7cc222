"""`vitdeploy doctor`: the facts in one pass, the warnings that follow, the CLI and its JSON."""

import json

from recorded import JETSON_CLOCKS_LOCKED, FakeSystem, orin

from vitdeploy.doctor import gather
from vitdeploy.extras import COMMANDS


def test_on_this_machine(tmp_path, no_tensorrt):
    facts = gather(system=FakeSystem(tmp_path))
    import numpy
    import onnxruntime

    assert facts.libraries["numpy"] == numpy.__version__
    assert facts.onnxruntime.version == onnxruntime.__version__
    assert "CPUExecutionProvider" in facts.onnxruntime.providers
    assert facts.tensorrt.tensorrt is None and facts.tensorrt.cuda_layer.startswith("none")
    assert facts.gpus == [] and facts.gpu_note == "nvidia-smi is not on this machine"
    assert facts.jetson is None
    assert facts.commands["build"] and not facts.commands["build --print-trtexec"] and not facts.commands["info"]
    raw = facts.to_dict()
    assert json.loads(json.dumps(raw)) == raw  # plain JSON
    assert set(raw["commands"]) == set(COMMANDS)
    assert raw["commands"]["build"] == {"works": False, "needs": ["tensorrt"],
                                        "install": raw["commands"]["build"]["install"]}
    assert raw["commands"]["build"]["install"].startswith('pip install "vitdeploy[tensorrt]"')


def test_an_orin_with_dvfs_on_warns(tmp_path, no_tensorrt):
    facts = gather(system=orin(tmp_path))
    assert facts.jetson.l4t == "36.4.3" and facts.jetson.clocks.locked is False
    warnings = facts.warnings()
    assert any("clocks are not locked" in w and "sudo jetson_clocks" in w for w in warnings)
    assert facts.to_dict()["jetson"]["clocks_locked"] is False


def test_an_orin_with_locked_clocks_does_not(tmp_path, no_tensorrt):
    facts = gather(system=orin(tmp_path, clocks=JETSON_CLOCKS_LOCKED))
    assert facts.jetson.clocks.locked is True
    assert not any("clocks" in w for w in facts.warnings())


def test_a_jetson_with_pips_opencv_is_told_about_gstreamer(tmp_path, no_tensorrt):
    import cv2

    facts = gather(system=orin(tmp_path))
    if facts.opencv.gstreamer:  # an OpenCV with GStreamer here: nothing to warn about
        assert not any("GStreamer" in w for w in facts.warnings())
    else:
        assert any("no GStreamer" in w and "python3-opencv" in w for w in facts.warnings()), cv2.__file__


def test_missing_opencv_is_a_warning(tmp_path, no_tensorrt, hide):
    hide("cv2")
    facts = gather(system=FakeSystem(tmp_path))
    assert facts.opencv.version is None
    assert any(w.startswith("no OpenCV: run, bench and build need it") for w in facts.warnings())
    assert facts.commands["run"] and facts.commands["bench"]


def test_the_command(invoke):
    r = invoke("doctor")
    assert r.exit_code == 0, r.output
    for line in ("vitdeploy 0.1.0 on Python", "onnxruntime ", "TensorRT:", "CUDA layer:", "GPU:", "Jetson:",
                 "OpenCV", "commands", "build --print-trtexec"):
        assert line in r.output, line
    raw = json.loads(invoke("doctor", "--json").output)
    assert raw["vitdeploy"] == "0.1.0" and "warnings" in raw and raw["commands"]["info"]["works"] is True
