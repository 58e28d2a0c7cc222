"""The CLI as a user meets it: help with examples, one-line errors, exit codes, no tracebacks."""

import pytest

from vitdeploy.cli.app import app


def test_top_level_help_lists_commands_and_an_example(invoke):
    r = invoke("--help")
    assert r.exit_code == 0
    for cmd in ("models", "export", "info"):
        assert cmd in r.output
    assert "Example" in r.output


@pytest.mark.parametrize("command", [c.name for c in app.registered_commands])
def test_every_command_help_shows_an_example(invoke, command):
    r = invoke(command, "--help")
    assert r.exit_code == 0, r.output
    assert "Example" in r.output


def test_models_lists_the_zoo(invoke):
    r = invoke("models")
    assert r.exit_code == 0
    assert "vit-tiny-detr" in r.output and "448x800" in r.output


def test_export_then_info(invoke, tmp_path):
    out = tmp_path / "b"
    r = invoke("export", "vit-test-detr", "--out", out, "--max-cameras", "4")
    assert r.exit_code == 0, r.output
    assert "parity vs PyTorch: pass" in r.output
    assert (out / "model.onnx").is_file() and (out / "manifest.json").is_file()
    r = invoke("info", out)
    assert r.exit_code == 0
    assert "vit-test-detr" in r.output and "cameras 1..4" in r.output
    r = invoke("info", out, "--json")
    assert '"schema": 2' in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "vit-tiny-dter", "--out", "{tmp}/b"], "did you mean 'vit-tiny-detr'"),
        (["export", "vit-test-cls", "--out", "{tmp}/b", "--image-size", "65x64"], "not a multiple of the patch size"),
        (["export", "vit-test-cls", "--out", "{tmp}/b", "--image-size", "big"], "is not HEIGHTxWIDTH"),
        (["export", "vit-test-cls", "--out", "{tmp}/b", "--checkpoint", "{tmp}/none.pt"], "does not exist"),
        (["info", "{tmp}/nothing"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(invoke, tmp_path, args, message):
    r = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 1
    assert message in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_info_checks_every_file_against_its_recorded_sha256(invoke, bundle):
    b = bundle.path
    r = invoke("info", b)
    assert r.exit_code == 0 and "CHANGED" not in r.output, r.output
    data = (b / "model.onnx").read_bytes()
    (b / "model.onnx").write_bytes(data[: len(data) // 2])  # truncated: before, info said [good]
    r = invoke("info", b)
    assert r.exit_code == 1, r.output
    assert "CHANGED" in r.output and "model.onnx (changed)" in r.output and "Traceback" not in r.output
    (b / "model.onnx").unlink()
    r = invoke("info", b)
    assert r.exit_code == 1 and "MISSING" in r.output and "model.onnx (missing)" in r.output
