"""The results MCAP: read back with the mcap reader and Foxglove's schemas, it holds exactly the
JSONL's boxes, on the recording's clock."""

from __future__ import annotations

import json

import numpy as np
import pytest
from recording_files import stream, write_ros2_mcap

from vitdeploy.runtime.rig import Camera, ModelConfig, Outputs, Rig
from vitdeploy.runtime.run import RunOptions, run_rig

MS = 1_000_000


def read_results(path):
    """topic -> [(log time ns, decoded message)] via mcap's reader and the protobuf/JSON decoders."""
    from mcap.reader import make_reader
    from mcap_protobuf.decoder import DecoderFactory

    out: dict[str, list] = {}
    protobuf = DecoderFactory()
    with open(path, "rb") as fh:
        for schema, channel, message in make_reader(fh).iter_messages(log_time_order=True):
            if channel.message_encoding == "json":
                decoded = json.loads(message.data)
            else:
                decoded = protobuf.decoder_for(channel.message_encoding, schema)(message.data)
            out.setdefault(channel.topic, []).append((message.log_time, schema.name, decoded))
    return out


def test_the_results_mcap_holds_the_jsonl_boxes_on_the_recording_clock(bundle, tmp_path):
    a, b = stream(5, period_ns=100 * MS, seed=1), stream(5, period_ns=100 * MS, offset_ns=20 * MS, seed=2)
    write_ros2_mcap(tmp_path / "drive.mcap", {"/cam_a/image": ("sensor_msgs/msg/CompressedImage", a),
                                              "/cam_b/image": ("sensor_msgs/msg/CompressedImage", b)})
    rig = Rig(cameras=(Camera("a", "drive.mcap#/cam_a/image", fps=10), Camera("b", "drive.mcap#/cam_b/image", fps=10)),
              model=ModelConfig(score_threshold=0.0, top_k=4), rate_hz=0, sync_tolerance_ms=50,
              outputs=Outputs(live=False, mcap="results.mcap", mcap_images=True), base_dir=tmp_path)
    summary = run_rig(rig, bundle=bundle, options=RunOptions(out=tmp_path / "out"))
    assert summary.mcap == tmp_path / "out" / "results.mcap" and summary.sets_out == 5
    records = [json.loads(line) for line in (tmp_path / "out" / "frames.jsonl").read_text().splitlines()]
    found = read_results(summary.mcap)
    assert sorted(found) == ["/a/annotations", "/a/image", "/b/annotations", "/b/image", "/vitdeploy/status"]
    for i, (cam, msgs) in enumerate((("a", a), ("b", b))):
        annotations = found[f"/{cam}/annotations"]
        assert [t for t, _, _ in annotations] == [m.stamp_ns for m in msgs]  # each on its frame's stamp
        assert {name for _, name, _ in annotations} == {"foxglove.ImageAnnotations"}
        for record, (_, _, ann) in zip(records, annotations, strict=True):
            dets = record["cameras"][i]["results"]
            assert len(dets) == 4 and len(ann.points) == 4 and len(ann.texts) == 4
            for det, polygon, text in zip(dets, ann.points, ann.texts, strict=True):
                x1, y1, x2, y2 = det["box"]
                corners = [(p.x, p.y) for p in polygon.points]
                np.testing.assert_allclose(corners, [(x1, y1), (x2, y1), (x2, y2), (x1, y2)], atol=0.051)
                label, score = text.text.rsplit(" ", 1)
                assert label == det["label"] and float(score) == pytest.approx(det["score"], abs=0.0051)
        images = found[f"/{cam}/image"]
        assert [t for t, _, _ in images] == [m.stamp_ns for m in msgs]
        assert {name for _, name, _ in images} == {"foxglove.CompressedImage"}
    status = found["/vitdeploy/status"]
    assert [t for t, _, _ in status] == [r["stamp_ns"] for r in records] == [m.stamp_ns for m in a]
    for (_, name, st), record in zip(status, records, strict=True):
        assert name == "vitdeploy.SetStatus" and st["set"] == record["set"] and st["missing"] == []
        assert st["latency_ms"]["infer"] == pytest.approx(record["latency_ms"]["infer"], abs=1e-3)
        assert st["deadline_miss"] == record["deadline_miss"]


def test_a_results_file_must_be_an_mcap(bundle, tmp_path):
    from vitdeploy.errors import DataError, RigConfigError
    from vitdeploy.runtime.rig import parse_rig

    with pytest.raises(RigConfigError, match=r"outputs.mcap: expected a file name ending in .mcap, got 'r.json'"):
        parse_rig('[outputs]\nmcap = "r.json"\n[[cameras]]\nname = "a"\nsource = "x.mcap"\n')
    rig = Rig(cameras=(Camera("a", "synthetic://front?size=64x96", fps=10),), outputs=Outputs(live=False, mcap="r.json"))
    with pytest.raises(DataError, match="give a file name ending in .mcap"):
        run_rig(rig, bundle=bundle, options=RunOptions(out=tmp_path, max_frames=1))


def test_a_rig_level_heads_3d_boxes_become_scene_update_cubes(tmp_path):
    from vitdeploy.data.boxes3d import Boxes3D
    from vitdeploy.runtime.mcap_sink import McapSink
    from vitdeploy.runtime.sources import Clock, Health
    from vitdeploy.runtime.sync import CameraSlot, FrameSet

    boxes = Boxes3D(centers=np.array([[10.0, -2.0, 0.75]]), sizes=np.array([[4.5, 1.9, 1.5]]), yaws=np.array([0.3]),
                    labels=np.array([1]), scores=np.array([0.8]))
    slot = CameraSlot("front", np.zeros((8, 8, 3), np.uint8), False, Health.OK, 1.0, 0,
                      stamp_ns=1_700_000_000_000_000_000, clock=Clock.RECORDING)
    fs = FrameSet(index=0, slots=[slot], skew_ms=0.0, stamps={"sync": 1.0}, stamp_ns=slot.stamp_ns, results=boxes)
    sink = McapSink(tmp_path / "r.mcap", class_names=["car", "truck"], budget_ms=100)
    sink.write(fs)
    sink.close()
    found = read_results(tmp_path / "r.mcap")
    [(stamp, name, update)] = found["/vitdeploy/boxes_3d"]
    assert stamp == slot.stamp_ns and name == "foxglove.SceneUpdate"
    [entity] = update.entities
    [cube] = entity.cubes
    assert entity.frame_id == "ego" and entity.texts[0].text == "truck 0.80"
    assert (cube.pose.position.x, cube.pose.position.y, cube.pose.position.z) == pytest.approx((10.0, -2.0, 0.75))
    assert (cube.size.x, cube.size.y, cube.size.z) == pytest.approx((4.5, 1.9, 1.5))
    assert 2 * np.arctan2(cube.pose.orientation.z, cube.pose.orientation.w) == pytest.approx(0.3)
    assert "/front/annotations" not in found  # a rig-level head has no per-camera boxes
