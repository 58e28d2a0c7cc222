"""`vitdeploy data synth`: writes a COCO dataset; bad input is one line, no traceback, exit 1."""

from __future__ import annotations

import json

import pytest


def test_synth_writes_images_and_annotations(invoke, tmp_path):
    out = tmp_path / "synth"
    result = invoke("data", "synth", "--out", str(out), "--frames", "2", "--cameras", "2",
                    "--size", "128x224", "--seed", "1")
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "annotations.json").read_text())
    assert len(doc["images"]) == 4
    assert all((out / im["file_name"]).is_file() for im in doc["images"])
    assert sorted(p.name for p in (out / "images").iterdir()) == ["front", "front_left"]
    last = result.output.strip().splitlines()[-1]
    assert "wrote 4 images" in last and f"{len(doc['annotations'])} objects" in last and "annotations.json" in last


def test_synth_help_has_an_example(invoke):
    result = invoke("data", "synth", "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output and "vitdeploy data synth --out" in result.output


@pytest.mark.parametrize("args, message", [
    (["--frames", "0"], "at least 1 frame"),
    (["--size", "256by448"], "--size"),
    (["--cameras", "9"], "cameras"),
])
def test_synth_bad_input_is_one_line_without_traceback(invoke, tmp_path, args, message):
    result = invoke("data", "synth", "--out", str(tmp_path / "o"), *args)
    assert result.exit_code == 1
    text = result.output.strip()
    assert message in text and "Traceback" not in text and len(text.splitlines()) == 1


def test_synth_refuses_an_out_path_that_is_a_file(invoke, tmp_path):
    afile = tmp_path / "taken"
    afile.write_text("x")
    result = invoke("data", "synth", "--out", str(afile), "--frames", "1")
    assert result.exit_code == 1
    assert "is a file" in result.output and "Traceback" not in result.output


# ---- vitdeploy data info ----------------------------------------------------------------------

def _drive(tmp_path):
    from recording_files import stream, write_ros2_mcap

    return write_ros2_mcap(tmp_path / "drive.mcap", {
        "/front/compressed": ("sensor_msgs/msg/CompressedImage", stream(6)),
        "/rear/compressed": ("sensor_msgs/msg/CompressedImage", stream(3, period_ns=200_000_000, seed=1))})


def test_info_lists_topics_counts_rates_and_span(invoke, tmp_path, monkeypatch):
    from vitdeploy.cli.console import console

    monkeypatch.setattr(console, "width", 160)  # one table row per topic, nothing wrapped
    result = invoke("data", "info", str(_drive(tmp_path)))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "MCAP, 3 topics, 10 messages, 0.503 s from 2026-01-01T00:00:00.000+00:00" in lines[0]
    rows = {cells[0]: cells[1:] for line in lines[1:]
            if len(cells := [c.strip() for c in line.split("│")[1:-1]]) == 7}
    assert rows["/front/compressed"] == ["sensor_msgs/msg/CompressedImage", "cdr", "6", "10.00", "0.500", "yes"]
    assert rows["/rear/compressed"] == ["sensor_msgs/msg/CompressedImage", "cdr", "3", "5.00", "0.400", "yes"]
    assert rows["/diagnostics"] == ["std_msgs/msg/String", "cdr", "1", "0.00", "0.000", ""]  # not an image topic


def test_info_json(invoke, tmp_path):
    result = invoke("data", "info", str(_drive(tmp_path)), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["format"] == "MCAP" and doc["image_topics"] == ["/front/compressed", "/rear/compressed"]
    assert [(t["topic"], t["count"], t["rate_hz"]) for t in doc["topics"]] == [
        ("/diagnostics", 1, 0.0), ("/front/compressed", 6, 10.0), ("/rear/compressed", 3, 5.0)]


def test_info_on_a_damaged_recording_is_one_line(invoke, tmp_path):
    path = _drive(tmp_path)
    path.write_bytes(path.read_bytes()[:-200])
    result = invoke("data", "info", str(path))
    assert result.exit_code == 1
    text = result.output.strip()
    assert "is not a readable MCAP file" in text and "Traceback" not in text and len(text.splitlines()) == 1
