"""`vitdeploy data synth`: writes a COCO dataset; bad input is one line, no traceback, exit 1."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vitdeploy.cli.app import app

runner = CliRunner()


def test_synth_writes_images_and_annotations(tmp_path):
    out = tmp_path / "synth"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--frames", "2", "--cameras", "2",
                                 "--size", "128x224", "--seed", "1"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "annotations.json").read_text())
    assert len(doc["images"]) == 4
    assert all((out / im["file_name"]).is_file() for im in doc["images"])
    assert sorted(p.name for p in (out / "images").iterdir()) == ["front", "front_left"]
    last = result.output.strip().splitlines()[-1]
    assert "wrote 4 images" in last and f"{len(doc['annotations'])} objects" in last and "annotations.json" in last


def test_synth_help_has_an_example():
    result = runner.invoke(app, ["data", "synth", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and "vitdeploy data synth --out" in result.output


@pytest.mark.parametrize("args, message", [
    (["--frames", "0"], "at least 1 frame"),
    (["--size", "256by448"], "--size"),
    (["--cameras", "9"], "cameras"),
])
def test_synth_bad_input_is_one_line_without_traceback(tmp_path, args, message):
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 1
    text = result.output.strip()
    assert message in text and "Traceback" not in text and len(text.splitlines()) == 1


def test_synth_refuses_an_out_path_that_is_a_file(tmp_path):
    afile = tmp_path / "taken"
    afile.write_text("x")
    result = runner.invoke(app, ["data", "synth", "--out", str(afile), "--frames", "1"])
    assert result.exit_code == 1
    assert "is a file" in result.output and "Traceback" not in result.output
