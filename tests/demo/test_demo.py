"""The demo end to end with few frames: outputs exist and are well-formed; a second run reuses."""

import json

import cv2

from vitdeploy.demo import run_demo


def test_demo_writes_table_video_jsonl_and_bench(invoke, tmp_path):
    result = run_demo(out=tmp_path, cameras=2, frames=3, calibration_samples=16, eval_frames=4)
    assert [r.precision.value for r in result.rows] == ["fp32", "fp16", "int8"]
    for r in result.rows:
        assert r.sets == 3 and r.p50_ms > 0 and r.p99_ms >= r.p50_ms
        assert r.map50 is not None and 0.0 <= r.map50 <= 1.0
    bench = json.loads(result.bench_json.read_text())
    assert set(bench["precisions"]) == {"fp32", "fp16", "int8"}
    assert bench["machine"]
    for path in result.jsonl:
        lines = path.read_text().splitlines()
        assert len(lines) == 3
        assert all(len(json.loads(line)["cameras"]) == 2 for line in lines)
    cap = cv2.VideoCapture(str(result.video))
    ok, frame = cap.read()
    assert ok and frame.shape[0] > 0
    cap.release()

    again = invoke("demo", "--out", str(tmp_path), "--cameras", "2", "--frames", "3",
                   "--eval-frames", "4")
    assert again.exit_code == 0, again.output
    assert "reused from an earlier run: export, calibrate fp16, calibrate int8" in again.output
    assert "mAP@.5" in again.output and "int8" in again.output


def test_demo_bad_camera_count(invoke, tmp_path):
    r = invoke("demo", "--out", str(tmp_path), "--cameras", "9")
    assert r.exit_code == 1 and "out of range" in r.output and "Traceback" not in r.output
