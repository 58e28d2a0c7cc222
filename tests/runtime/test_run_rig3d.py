"""`vitdeploy run` with a rig-level 3D bundle: one ego-frame answer per frame set, and clear refusals."""

import json

import pytest

from vitdeploy.runtime.rig import Outputs, synthetic_rig
from vitdeploy.runtime.run import RunOptions, run_rig


def rig_file(tmp_path, cameras, *, geometry: bool, model: str = "", name: str = "rig.toml") -> str:
    """A rig file of the synthetic rig's first ``cameras`` cameras at 64x96, with the synthetic
    rig's geometry or without any."""
    from vitdeploy.data.geometry import CameraGeometry
    from vitdeploy.data.rig import rig_cameras

    text = f"rate_hz = 0\n[model]\n{model}\n[outputs]\nlive = false\n"
    for cam in rig_cameras((64, 96), count=cameras):
        text += (f'[[cameras]]\nname = "{cam.name}"\nsource = "synthetic://{cam.name}?size=64x96&loop=2"\nfps = 10\n'
                 "resolution = [64, 96]\n")
        if geometry:
            g = CameraGeometry.from_rig_camera(cam)
            text += (f"[cameras.geometry]\nfx = {g.fx}\nfy = {g.fy}\ncx = {g.cx}\ncy = {g.cy}\n"
                     f"position = {list(g.position)}\nyaw_deg = {g.yaw_deg}\npitch_deg = {g.pitch_deg}\n")
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_frame_set_gives_one_set_of_ego_frame_boxes(rig3d_bundle, tmp_path):
    rig = synthetic_rig(6, size=(64, 96), loop=2, rate_hz=0, outputs=Outputs(live=False))
    summary = run_rig(rig, bundle=rig3d_bundle, options=RunOptions(out=tmp_path, max_frames=3))
    assert summary.sets_out == 3
    records = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert len(records) == 3  # one line per frame set, not per camera
    for rec in records:
        assert all(cam["results"] == [] for cam in rec["cameras"])  # nothing per camera ...
        boxes = rec["results"]  # ... one answer for the set, in the ego frame
        assert len(boxes) == 10 and {b["label"] for b in boxes} == {"car"}
        assert set(boxes[0]) == {"label", "class_id", "score", "center", "size", "yaw"}
        assert len(boxes[0]["center"]) == 3 and len(boxes[0]["size"]) == 3
        assert max(abs(b["center"][0]) for b in boxes) > 5  # metres around the car, not pixels of a 64x96 image


def test_a_rig_without_geometry_is_a_one_line_error_unless_told_to_use_the_exported(rig3d_bundle, tmp_path, invoke):
    result = invoke("run", rig3d_bundle.path, "--rig", rig_file(tmp_path, 6, geometry=False),
                    "--out", tmp_path / "out", "--max-frames", "1")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "camera 'front' has no geometry" in result.output and "[cameras.geometry]" in result.output
    assert not (tmp_path / "out" / "frames.jsonl").exists()
    for told in (["--rig", rig_file(tmp_path, 6, geometry=False, model='geometry = "exported"', name="told.toml")],
                 ["--rig", rig_file(tmp_path, 6, geometry=False), "--exported-geometry"]):
        result = invoke("run", rig3d_bundle.path, *told, "--out", tmp_path / "out", "--max-frames", "1")
        assert result.exit_code == 0, result.output
        assert len(json.loads((tmp_path / "out" / "frames.jsonl").read_text())["results"]) == 10


def test_a_rig_with_another_camera_count_is_a_one_line_error(rig3d_bundle, tmp_path, invoke):
    result = invoke("run", rig3d_bundle.path, "--rig", rig_file(tmp_path, 4, geometry=True),
                    "--out", tmp_path / "out", "--max-frames", "1")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "the rig has 4 cameras" in result.output and "answers for a rig of 6" in result.output


def test_the_sets_boxes_go_into_the_results_mcap_as_scene_update_cubes(rig3d_bundle, tmp_path):
    pytest.importorskip("mcap")
    from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
    from mcap.reader import make_reader

    rig = synthetic_rig(6, size=(64, 96), loop=2, rate_hz=0, outputs=Outputs(live=False, jsonl=None,
                                                                            mcap="results.mcap"))
    run_rig(rig, bundle=rig3d_bundle, options=RunOptions(out=tmp_path, max_frames=2))
    with open(tmp_path / "results.mcap", "rb") as fh:
        updates = [SceneUpdate.FromString(message.data) for _schema, channel, message
                   in make_reader(fh).iter_messages() if channel.topic == "/vitdeploy/boxes_3d"]
    assert len(updates) == 2  # one SceneUpdate per frame set
    assert all(len(u.entities[0].cubes) == 10 and u.entities[0].frame_id == "ego" for u in updates)
