"""`run_rig` / `vitdeploy run`: synthetic cameras through the tiny exported model, faults, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from fakes import SIZE, ScriptedSource, StallingSource, corrupt_after, raises_after, write_video

from vitdeploy.errors import BackendError
from vitdeploy.runtime.backends import open_backend
from vitdeploy.runtime.backends.base import Backend
from vitdeploy.runtime.rig import Outputs, VideoMode, synthetic_rig
from vitdeploy.runtime.run import RunOptions, run_rig
from vitdeploy.runtime.sources import Health
from vitdeploy.runtime.sources.video import VideoFileSource

STAGES = ["preprocess_start", "preprocess_end", "infer_start", "infer_end", "postprocess_start",
          "postprocess_end", "sink_start"]


def rig6(**kwargs):
    kwargs.setdefault("outputs", Outputs(video=VideoMode.MOSAIC))
    return synthetic_rig(6, fps=20, size=SIZE, loop=4, sync_tolerance_ms=60, latency_budget_ms=500, **kwargs)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_six_synthetic_cameras_through_onnxruntime(bundle, tmp_path):
    summary = run_rig(rig6(), bundle=bundle, options=RunOptions(out=tmp_path, max_frames=20))
    assert summary.stopped_by == "max-frames" and summary.sets_out == 20
    records = read_jsonl(tmp_path / "frames.jsonl")
    assert len(records) == 20
    names = ["front", "front_left", "front_right", "rear_left", "rear_right", "rear"]
    previous_sink = 0.0
    for rec in records:
        assert [c["name"] for c in rec["cameras"]] == names
        ts = rec["timestamps"]
        chain = [ts[k] for k in STAGES]
        assert chain == sorted(chain), rec["timestamps"]
        for cam in rec["cameras"]:
            if not cam["missing"]:
                assert cam["capture"] <= ts["sync"] <= ts["preprocess_start"]
                for det in cam["results"]:
                    x1, y1, x2, y2 = det["box"]
                    assert 0 <= x1 <= x2 <= SIZE[1] and 0 <= y1 <= y2 <= SIZE[0]
                    assert det["label"] in bundle.manifest.class_names
        assert ts["sink_start"] > previous_sink
        previous_sink = ts["sink_start"]
        lat = rec["latency_ms"]
        assert lat["end_to_end"] >= lat["infer"] > 0 and rec["skew_ms"] <= 60
    assert [r["set"] for r in records] == sorted(r["set"] for r in records)
    present = sum(not c["missing"] for r in records for c in r["cameras"])
    assert present >= 0.9 * 6 * 20  # healthy cameras make it into (nearly) every set
    for name in ("end_to_end", "infer", "preprocess"):
        assert len(summary.latency_ms[name]) == 20 and summary.percentiles(name)[99] > 0
    assert [c.frames_out for c in summary.cameras] == [
        sum(not r["cameras"][i]["missing"] for r in records) for i in range(6)]
    cap = cv2.VideoCapture(str(summary.videos[0]))
    ok, frame = cap.read()
    assert ok and frame.shape[0] > SIZE[0] and frame.shape[1] > SIZE[1]  # a 3x2 mosaic


def test_broken_cameras_do_not_stop_the_rig(bundle, tmp_path):
    video = tmp_path / "short.mp4"
    write_video(video, 4)
    faulty = {
        "front_left": ScriptedSource("front_left", raises_after(3), fps=20),
        "front_right": StallingSource("front_right", good=3, fps=20, stall_timeout_s=0.3),
        "rear_left": ScriptedSource("rear_left", corrupt_after(3), fps=20),
        "rear_right": VideoFileSource("rear_right", video, fps=20),
    }
    summary = run_rig(rig6(outputs=Outputs(video=VideoMode.PER_CAMERA)), bundle=bundle, sources=faulty,
                      options=RunOptions(out=tmp_path / "out", max_frames=30))
    assert summary.sets_out == 30
    records = read_jsonl(tmp_path / "out" / "frames.jsonl")
    assert len(records) == 30 and all(len(r["cameras"]) == 6 for r in records)
    by_name = {c.name: c for c in summary.cameras}
    assert by_name["front_left"].health is Health.FAILED and "sensor unplugged" in by_name["front_left"].last_error
    assert by_name["front_right"].health is Health.STALLED
    assert by_name["rear_left"].corrupt > 0 and "expected" in by_name["rear_left"].last_error
    assert by_name["rear_right"].health is Health.ENDED
    for name in faulty:
        assert by_name[name].frames_out <= 4 and by_name[name].missing >= 26
    last = {c["name"]: c for c in records[-1]["cameras"]}
    for name in faulty:
        assert last[name]["missing"] and last[name]["results"] == [] and last[name]["capture"] is None
    assert last["front_left"]["health"] == "failed" and "front_left" in records[-1]["missing"]
    for name in ("front", "rear"):  # the healthy cameras' output is complete
        assert by_name[name].frames_out >= 27
    assert len(summary.videos) == 6
    for path in summary.videos:
        assert cv2.VideoCapture(str(path)).read()[0]


class SlowBackend(Backend):
    """Takes ``delay`` seconds per batch; fails on call ``fail_on`` if given."""

    name = "slow"

    def __init__(self, inner, *, delay, fail_on=None):
        super().__init__(inputs=inner.inputs, outputs=inner.outputs, dim_ranges=inner.dim_ranges)
        self.inner, self.delay, self.fail_on, self.calls = inner, delay, fail_on, 0

    def _infer(self, feed):
        self.calls += 1
        if self.calls == self.fail_on:
            raise BackendError("slow: device lost")
        time.sleep(self.delay)
        return self.inner.infer(feed)


def test_a_slow_model_drops_the_oldest_sets_and_keeps_latency_bounded(bundle, tmp_path):
    with open_backend("onnxruntime", bundle) as inner:
        slow = SlowBackend(inner, delay=0.15)  # 3 ticks per batch at 20 sets/s
        summary = run_rig(rig6(outputs=Outputs()), bundle=bundle, backend=slow,
                          options=RunOptions(out=tmp_path, duration=1.5))
    assert summary.sets_dropped > 0 and summary.dropped["infer"] + summary.dropped["preprocess"] > 0
    assert 3 <= summary.sets_out <= 12
    # never more than the sets in flight between capture and results: no unbounded queueing
    assert np.nanmax(summary.latency_ms["end_to_end"]) < 4 * 150 + 200
    records = read_jsonl(tmp_path / "frames.jsonl")
    assert len(records) == summary.sets_out
    assert any(b["set"] - a["set"] > 1 for a, b in zip(records, records[1:], strict=False))  # gaps = dropped sets


def test_a_backend_failure_stops_the_run_with_its_error(bundle, tmp_path):
    with open_backend("onnxruntime", bundle) as inner, pytest.raises(BackendError, match="device lost"):
        run_rig(rig6(), bundle=bundle, backend=SlowBackend(inner, delay=0.0, fail_on=4),
                options=RunOptions(out=tmp_path, max_frames=50))
    records = read_jsonl(tmp_path / "frames.jsonl")  # what was written is complete
    assert 1 <= len(records) <= 3
    assert cv2.VideoCapture(str(tmp_path / "mosaic.mp4")).read()[0]


def test_cli_run_synthetic_prints_the_summary(invoke, bundle, tmp_path):
    r = invoke("run", str(bundle.path), "--synthetic-cameras", "2", "--synthetic-size", "64x96",
               "--fps", "20", "--max-frames", "5", "--out", str(tmp_path), "--no-live")
    assert r.exit_code == 0, r.output
    for text in ("frames in", "end-to-end", "p99", "deadline misses", "stopped by max-frames", "frames.jsonl"):
        assert text in r.output
    assert len(read_jsonl(tmp_path / "frames.jsonl")) == 5


def test_ctrl_c_stops_cleanly_with_summary_and_intact_files(bundle, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vitdeploy.cli.app", "run", str(bundle.path), "--synthetic-cameras", "3",
         "--synthetic-size", "64x96", "--fps", "20", "--video", "per-camera", "--out", str(out), "--no-live"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        jsonl = out / "frames.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if jsonl.is_file() and jsonl.read_text().count("\n") >= 5:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "stopped by interrupted" in output and "deadline misses" in output and "Traceback" not in output
    lines = jsonl.read_text().splitlines()
    assert len(lines) >= 5 and all(len(json.loads(line)["cameras"]) == 3 for line in lines)
    for name in ("front", "front_left", "front_right"):
        cap = cv2.VideoCapture(str(out / f"video_{name}.mp4"))
        assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= 5
        assert cap.read()[0]


def test_free_running_rig_processes_every_video_frame_then_stops(bundle, tmp_path):
    from vitdeploy.runtime.rig import Camera, Rig

    for name in ("a", "b"):
        write_video(tmp_path / f"{name}.mp4", 6)
    rig = Rig(cameras=tuple(Camera(n, f"{n}.mp4", fps=20) for n in ("a", "b")), rate_hz=0, base_dir=tmp_path)
    summary = run_rig(rig, bundle=bundle, options=RunOptions(out=tmp_path / "out"))
    assert summary.stopped_by == "sources finished" and summary.sets_out == 6 and summary.sets_dropped == 0
    records = read_jsonl(tmp_path / "out" / "frames.jsonl")
    assert [[c["frame"] for c in r["cameras"]] for r in records] == [[k, k] for k in range(6)]
    assert all(c.health is Health.ENDED and c.missing == 0 for c in summary.cameras)


def test_the_first_video_frame_reaches_the_output(bundle, tmp_path):
    from vitdeploy.runtime.rig import Camera, Rig

    write_video(tmp_path / "v.mp4", 20)
    # the synthetic camera's first render is slow (the scene generator starts): the video's first
    # frames were once replaced in its buffer while the first set waited for it
    rig = Rig(cameras=(Camera("v", "v.mp4", fps=20), Camera("s", "synthetic://front?size=64x96", fps=20)),
              rate_hz=20, sync_tolerance_ms=40, latency_budget_ms=1000, base_dir=tmp_path,
              outputs=Outputs(live=False))
    summary = run_rig(rig, bundle=bundle, options=RunOptions(out=tmp_path / "out", max_frames=22))
    v = summary.cameras[0]
    records = read_jsonl(tmp_path / "out" / "frames.jsonl")
    assert records[0]["cameras"][0]["frame"] == 0  # before: the first set had frame 1, frame 0 was lost
    # Every frame is used or counted (before: 20 in, 19 out, "dropped: none"). A paced camera on a
    # machine too loaded to keep 20 Hz may legitimately skip one; on an idle one none is skipped.
    assert (v.frames_in, v.frames_out + v.skipped, v.health) == (20, 20, Health.ENDED)
    used = [r["cameras"][0]["frame"] for r in records if r["cameras"][0]["frame"] is not None]
    assert used == sorted(set(used)) and len(used) == v.frames_out


def test_frames_no_set_used_are_counted_not_hidden(invoke, bundle, tmp_path):
    # cameras at 20 fps on a 10 Hz rig: every other frame is never used, and the summary says so
    rig = synthetic_rig(2, fps=20, size=SIZE, loop=4, rate_hz=10, sync_tolerance_ms=60, latency_budget_ms=500)
    summary = run_rig(rig, bundle=bundle, options=RunOptions(out=tmp_path, max_frames=8))
    for c in summary.cameras:
        assert c.skipped >= 5 and c.frames_out == 8
    (tmp_path / "rig.toml").write_text('rate_hz = 10\n[outputs]\nlive = false\n[[cameras]]\nname = "front"\n'
                                       'source = "synthetic://front?size=64x96&loop=4"\nfps = 20\n')
    r = invoke("run", bundle.path, "--rig", tmp_path / "rig.toml", "--max-frames", "6", "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    assert "dropped: none" not in r.output and "frames of front" in r.output  # before: "dropped: none"


def test_exit_codes_say_when_cameras_were_lost(invoke, bundle, tmp_path):
    write_video(tmp_path / "ok.mp4", 10)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    cams = "\n".join(f'[[cameras]]\nname = "{n}"\nsource = "{src}"\nfps = 20' for n, src in
                     (("good", "ok.mp4"), ("bad", "broken.mp4")))
    (tmp_path / "rig.toml").write_text(f"rate_hz = 0\n[outputs]\nlive = false\n{cams}\n")
    r = invoke("run", bundle.path, "--rig", tmp_path / "rig.toml", "--out", tmp_path / "out")
    assert r.exit_code == 3, r.output  # it ran, without one camera: before, 0
    assert "cameras lost: bad" in r.output and "Traceback" not in r.output
    assert len(read_jsonl(tmp_path / "out" / "frames.jsonl")) == 10

    (tmp_path / "none.toml").write_text('rate_hz = 0\n[outputs]\nlive = false\n[[cameras]]\nname = "bad"\n'
                                        'source = "broken.mp4"\nfps = 20\n')
    r = invoke("run", bundle.path, "--rig", tmp_path / "none.toml", "--out", tmp_path / "none")
    assert r.exit_code == 1, r.output  # every camera failed, nothing came out: before, 0
    assert "no frame set was produced" in r.output and "bad" in r.output


def test_run_statistics_stay_bounded_on_a_long_run(monkeypatch):
    from vitdeploy.runtime import stats as stats_module
    from vitdeploy.runtime.sync import CameraSlot, FrameSet

    monkeypatch.setattr(stats_module, "MAX_SAMPLES", 50)
    st = stats_module.Stats([ScriptedSource("a", lambda k: None)], budget_ms=10.0)
    for i in range(200):
        slot = CameraSlot("a", np.zeros((2, 2, 3), np.uint8), False, Health.OK, capture_time=float(i))
        st.record(FrameSet(i, [slot], 0.0, stamps={"tick": i, "sync": i + 0.001, "sink_start": i + 0.02,
                                                       "sink_end": i + 0.021}))
    summary = st.summary(dropped={}, empty_ticks=0, stopped_by="stop", duration_s=200.0)
    assert summary.sets_out == 200 and summary.deadline_misses == 200 and summary.cameras[0].frames_out == 200
    assert len(summary.latency_ms["end_to_end"]) == 50 and len(summary.done_times) == 50  # the latest, kept
    assert summary.done_times[0] == 150.021
