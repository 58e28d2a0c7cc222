"""Extras: a command whose extra is missing names it, in one line, exit 1, no traceback, nothing written.

Runs on the full install by hiding modules (the ``hide`` fixture); tests/carside runs the same
commands on a real core install, where they are missing for real.
"""

import pytest
import typer

from vitdeploy.cli.console import handles_errors
from vitdeploy.errors import MissingDependencyError
from vitdeploy.extras import (
    COMMANDS,
    LIBRARIES,
    Extra,
    MissingExtraError,
    command_status,
    error_for_missing_module,
    install_command,
    installed,
    require,
    require_command,
)


def test_installed_sees_hidden_and_absent_modules(hide):
    assert installed("numpy")
    assert not installed("surely_no_such_module_here")
    hide("numpy")
    assert not installed("numpy")


def test_the_message_names_libraries_extras_and_the_install(hide):
    hide("torch", "onnxscript")
    with pytest.raises(MissingExtraError) as info:
        require_command("export")
    message = str(info.value)
    assert message.startswith("`vitdeploy export` needs torch and onnxscript from the export extra, which are not "
                               "installed; install with: pip install \"vitdeploy[export]\"")
    assert isinstance(info.value, MissingDependencyError) and "\n" not in message


def test_several_extras_are_one_install_line(hide):
    hide("cv2", "faster_coco_eval")
    with pytest.raises(MissingExtraError) as info:
        require(Extra.EVAL, Extra.OPENCV, needed_by="`vitdeploy eval`")
    assert 'pip install "vitdeploy[eval,opencv]"' in str(info.value)
    assert "from the eval and opencv extras, which are" in str(info.value)
    # the JetPack way for OpenCV: the system's, built with GStreamer, seen from the venv
    assert "python3-opencv" in str(info.value) and "--system-site-packages" in str(info.value)


def test_any_one_cuda_layer_will_do(hide):
    hide("pycuda")
    cuda = [lib for lib in LIBRARIES[Extra.TENSORRT] if "cuda" in lib.modules][0]
    assert cuda.modules == ("pycuda", "cuda")
    assert install_command([Extra.TENSORRT]).startswith('pip install "vitdeploy[tensorrt]" (TensorRT and cuda-python; '
                                                         "on Jetson or DRIVE")


def test_command_status_lists_what_each_command_lacks(hide):
    assert set(command_status()) == set(COMMANDS)
    hide("torch", "cv2")
    status = command_status()
    assert status["info"] == [] and status["doctor"] == [] and status["build --print-trtexec"] == []
    assert status["run"] == [Extra.OPENCV]
    assert status["export"] == [Extra.EXPORT, Extra.OPENCV]
    assert Extra.EXPORT in status["demo"]


def test_a_failed_import_of_an_extras_library_becomes_its_error():
    err = error_for_missing_module(ModuleNotFoundError("No module named 'matplotlib.pyplot'", name="matplotlib.pyplot"),
                                   needed_by="this command")
    assert err is not None and 'pip install "vitdeploy[plots]"' in str(err)
    assert error_for_missing_module(ModuleNotFoundError("x", name="left_pad"), needed_by="x") is None


@pytest.mark.parametrize(("args", "hidden", "extra"), [
    (["export", "vit-test-detr", "--out", "{tmp}/b"], ("torch",), "export"),
    (["calibrate", "{bundle}", "--precision", "fp16"], ("modelopt",), "calibrate"),
    (["eval", "{bundle}", "--data", "synthetic"], ("faster_coco_eval",), "eval"),
    (["demo", "--out", "{tmp}/demo"], ("onnxscript",), "export"),
    (["models"], ("torch",), "export"),
    (["data", "synth", "--out", "{tmp}/synth", "--frames", "1"], ("cv2",), "opencv"),
    (["run", "{bundle}", "--synthetic-cameras", "1", "--max-frames", "1"], ("cv2",), "opencv"),
    (["run", "{bundle}", "--synthetic-cameras", "1", "--max-frames", "1", "--backend", "torch"], ("torch",), "export"),
    (["bench", "{bundle}", "--iterations", "1", "--plot", "{tmp}/p.png"], ("matplotlib",), "plots"),
])
def test_a_command_without_its_extra_names_it_and_writes_nothing(invoke, hide, bundle, tmp_path, unchanged, args,
                                                                  hidden, extra):
    hide(*hidden)
    args = [a.replace("{tmp}", str(tmp_path)).replace("{bundle}", str(bundle.path)) for a in args]
    with unchanged(bundle.path):
        r = invoke(*args)
    assert r.exit_code == 1, r.output
    assert f'pip install "vitdeploy[{extra}]' in r.output, r.output
    assert "Traceback" not in r.output and r.output.count("error:") == 1
    assert not any(p.name in ("b", "demo", "synth", "p.png") for p in tmp_path.iterdir())


def test_an_unforeseen_import_of_an_extras_library_is_one_line_too(hide, capsys):
    """The CLI's safety net: an import no up-front check foresaw still names the extra."""

    @handles_errors
    def command_that_plots():
        import matplotlib.pyplot  # noqa: F401

    hide("matplotlib", "matplotlib.pyplot")
    with pytest.raises(typer.Exit) as info:
        command_that_plots()
    assert info.value.exit_code == 1
    err = capsys.readouterr().err
    assert 'this command needs matplotlib from the plots extra' in err and 'pip install "vitdeploy[plots]"' in err


def test_a_missing_module_no_extra_brings_stays_the_error_it_is():
    @handles_errors
    def broken():
        raise ModuleNotFoundError("No module named 'left_pad'", name="left_pad")

    with pytest.raises(ModuleNotFoundError, match="left_pad"):
        broken()
