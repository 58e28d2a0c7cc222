"""Replay in one process (``workers=0``): outputs, summaries, resuming, labels, the report, the CLI."""

from __future__ import annotations

import json
import shutil

import pytest
from replay_data import FRAMES

from vitdeploy.errors import BundleError, MissingDependencyError
from vitdeploy.replay import ReplayOptions, detection_views, replay


def options(out, **kwargs):
    return ReplayOptions(out=out, workers=0, **kwargs)


def mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_each_recording_gets_its_jsonl_per_precision_and_a_summary(replay_bundle, drives, tmp_path):
    seen = []
    # a glob match is one recording (the folder of per-camera videos); the folder given as such would be
    # a folder of recordings, one per video
    report = replay(replay_bundle, [drives / "drive0.mp4", str(drives / "rig*")], options=options(tmp_path / "R"),
                    on_result=seen.append)
    assert [r.status for r in report.results] == ["complete", "complete"] and len(seen) == 2
    folder = tmp_path / "R" / "recordings" / "rig2"
    assert {p.name for p in folder.iterdir()} == {"fp32.jsonl", "int8.jsonl", "rig.fp32.toml", "rig.int8.toml",
                                                  "summary.json", "complete.json"}
    summary = json.loads((folder / "summary.json").read_text())
    fp32, int8 = summary["precisions"]["fp32"], summary["precisions"]["int8"]
    # free-running, lock-step: every frame of both cameras in a set, none skipped or missing
    assert fp32["sets"] == FRAMES and fp32["frames"] == 2 * FRAMES and fp32["skipped"] == fp32["missing"] == 0
    assert fp32["detections"] > 0 and "agreement" not in fp32
    assert int8["agreement"]["metric"] == "detection_map" and 0.5 < int8["agreement"]["value"] <= 1.0
    assert summary["agreement"] == int8["agreement"]["value"]
    assert int8["latency_ms"]["end_to_end"]["p50"] > 0
    views = detection_views(folder / "fp32.jsonl")
    assert [[c["frame"] for c in v["cameras"]] for v in views] == [[i, i] for i in range(FRAMES)]
    assert (tmp_path / "R" / "report.json").is_file() and (tmp_path / "R" / "report.md").is_file()


def test_the_rig_file_beside_the_jsonl_makes_vitdeploy_run_give_the_same_detections(replay_bundle, drives,
                                                                                   tmp_path, invoke):
    replay(replay_bundle, str(drives / "rig*"), options=options(tmp_path / "R"))
    folder = tmp_path / "R" / "recordings" / "rig2"
    r = invoke("run", "--rig", folder / "rig.int8.toml", "--out", tmp_path / "run", "--no-live")
    assert r.exit_code == 0, r.output
    assert detection_views(tmp_path / "run" / "int8.jsonl") == detection_views(folder / "int8.jsonl")


def test_a_rerun_recomputes_nothing_and_a_change_recomputes(replay_bundle, drives, tmp_path, bundle_copy):
    out = tmp_path / "R"
    replay(replay_bundle, drives / "drive1.mp4", options=options(out))
    before = mtimes(out / "recordings")
    again = replay(replay_bundle, drives / "drive1.mp4", options=options(out))
    assert [r.reused for r in again.results] == [True] and again.replayed == []
    assert mtimes(out / "recordings") == before
    # other settings: replayed again
    assert replay(replay_bundle, drives / "drive1.mp4", options=options(out, top_k=5)).replayed
    # a changed INT8 file (here: the FP32 graph itself, so the two agree perfectly): replayed again
    changed = bundle_copy(replay_bundle)
    shutil.copyfile(changed.path / "model.onnx", changed.path / "model.int8.onnx")
    (result,) = replay(changed, drives / "drive1.mp4", options=options(out, top_k=5)).results
    assert not result.reused and result.summary["agreement"] == 1.0
    assert not list((out / "recordings").glob(".*")), "staging folders left behind"


def test_a_corrupt_recording_fails_with_its_reason_and_the_others_complete(replay_bundle, drives, tmp_path):
    report = replay(replay_bundle, [drives / "corrupt.mp4", drives / "drive2.mp4"], options=options(tmp_path / "R"))
    bad, good = report.results
    assert bad.status == "failed" and "cannot open video" in bad.reason and "corrupt.mp4" in bad.reason
    assert good.ok and not (tmp_path / "R" / "recordings" / "corrupt").exists()
    md = (tmp_path / "R" / "report.md").read_text()
    assert "## Failed" in md and "corrupt" in md


def test_a_coco_set_is_scored_against_its_labels(replay_bundle, tmp_path):
    from vitdeploy.data.coco import write_coco

    write_coco(tmp_path / "set", frames=4, cameras=1, size=tuple(replay_bundle.manifest.image_size), seed=3)
    (result,) = replay(replay_bundle, tmp_path / "set", options=options(tmp_path / "R")).results
    assert result.ok, result.reason
    truth = result.summary["precisions"]["fp32"]["truth"]
    assert truth["images"] == 4 and 0.0 <= truth["map"] <= 1.0 and truth["map50"] is not None
    assert result.summary["precisions"]["int8"]["truth"]["images"] == 4


def test_the_report_lists_the_lowest_agreement_first(replay_bundle, drives, tmp_path):
    from vitdeploy.replay.report import ReplayReport, write_report

    report = replay(replay_bundle, [drives / "drive0.mp4", drives / "drive1.mp4", drives / "drive2.mp4"],
                    options=options(tmp_path / "R", lowest=2))
    # agreement values as a ranking would meet them: one perfect, one low, one unmeasured
    for result, value in zip(report.results, [1.0, 0.2, None], strict=True):
        result.summary["agreement"] = value
    ranked = ReplayReport(bundle=report.bundle, settings=report.settings, results=report.results, seconds=1.0,
                          scheduler="in this process", lowest=2)
    assert [r.recording.id for r in ranked.ranked()] == ["drive1", "drive0", "drive2"]
    files = write_report(ranked, tmp_path / "again")
    doc = json.loads(files[0].read_text())
    assert [r["id"] for r in doc["lowest_agreement"]] == ["drive1", "drive0", "drive2"]
    md = files[1].read_text()
    table = md.split("lowest agreement with FP32")[1]
    assert table.index("drive1") < table.index("drive0") and "drive2" not in table  # only the lowest 2
    assert (tmp_path / "again" / "report.png").stat().st_size > 1000


def test_a_precision_the_bundle_lacks_is_an_error_before_any_work(replay_bundle, drives, tmp_path):
    with pytest.raises(BundleError, match="no fp16 ONNX"):
        replay(replay_bundle, drives / "drive0.mp4", options=options(tmp_path / "R", precisions=("fp16",)))
    assert not (tmp_path / "R").exists()


def test_cli_replays_and_says_which_recordings_failed(replay_bundle, drives, tmp_path, invoke):
    out = tmp_path / "R"
    r = invoke("replay", replay_bundle.path, "--data", drives / "drive0.mp4", "--data", drives / "corrupt.mp4",
               "--workers", "0", "--precision", "int8", "-o", out, "-q")
    assert r.exit_code == 3, r.output
    assert "1 recordings failed: corrupt" in r.output and "cannot open video" in r.output
    assert "wrote" in r.output and (out / "recordings" / "drive0" / "int8.jsonl").is_file()
    r = invoke("replay", replay_bundle.path, "--data", drives / "drive0.mp4", "--workers", "0", "-o", out, "-q")
    assert r.exit_code == 0 and "0 recordings replayed, 1 complete from before" in r.output, r.output
    r = invoke("replay", replay_bundle.path, "--data", drives / "corrupt.mp4", "--workers", "0", "-o", out, "-q")
    assert r.exit_code == 1 and "no recording could be replayed" in r.output and "Traceback" not in r.output


def test_without_ray_the_replay_extra_is_named(replay_bundle, drives, tmp_path, hide, invoke):
    hide("ray")
    with pytest.raises(MissingDependencyError, match=r'pip install "vitdeploy\[replay\]"'):
        replay(replay_bundle, drives / "drive0.mp4", options=ReplayOptions(out=tmp_path / "R", workers=2))
    r = invoke("replay", replay_bundle.path, "--data", drives / "drive0.mp4", "-o", tmp_path / "R")
    assert r.exit_code == 1 and "Ray from the replay extra" in r.output and "--workers 0" in r.output



def test_an_mcap_drive_replays_one_camera_per_image_topic_as_run_does(replay_bundle, tmp_path, invoke):
    from recording_files import stream, write_ros2_mcap

    image = "sensor_msgs/msg/CompressedImage"
    drive = write_ros2_mcap(tmp_path / "drive.mcap", {
        "/cam_front/image_raw/compressed": (image, stream(6, seed=1)),
        "/cam_left/image_raw/compressed": (image, stream(6, offset_ns=20_000_000, seed=2))})
    (result,) = replay(replay_bundle, drive, options=options(tmp_path / "R")).results
    assert result.ok, result.reason
    folder = tmp_path / "R" / "recordings" / "drive"
    views = detection_views(folder / "int8.jsonl")
    # by recorded stamp: frame k of both topics (20 ms apart) in set k, none skipped
    assert [[(c["name"], c["frame"]) for c in v["cameras"]] for v in views] == [
        [("cam_front", k), ("cam_left", k)] for k in range(6)]
    r = invoke("run", "--rig", folder / "rig.int8.toml", "--out", tmp_path / "run", "--no-live")
    assert r.exit_code == 0, r.output
    assert detection_views(tmp_path / "run" / "int8.jsonl") == views
