"""`vitdeploy record`: a synthetic rig recorded losslessly, then run from the recording, gives the
same detections as running the synthetic rig directly, frame set by frame set."""

from __future__ import annotations

import json

import numpy as np
import pytest

CAMERAS = ("front", "front_left", "front_right")
MODEL = '[model]\nscore_threshold = 0.0\ntop_k = 5\n'


def rig_file(path, sources, *, rate_hz):
    cams = "".join(f'[[cameras]]\nname = "{n}"\nsource = "{s}"\nfps = 10\n\n' for n, s in sources)
    path.write_text(f"rate_hz = {rate_hz}\nstartup_timeout_s = 10\nsync_tolerance_ms = 50\n"
                    f"latency_budget_ms = 10000\n{MODEL}[outputs]\nlive = false\n\n{cams}")
    return path


def detections(folder):
    """(camera, frame index) -> [(label, score, box)] and the sets as lists of (camera, frame)."""
    by_frame, sets = {}, []
    for line in (folder / "frames.jsonl").read_text().splitlines():
        record = json.loads(line)
        sets.append([(c["name"], None if c["missing"] else c["frame"]) for c in record["cameras"]])
        for c in record["cameras"]:
            if not c["missing"]:
                by_frame[c["name"], c["frame"]] = [(d["label"], d["score"], d["box"]) for d in c["results"]]
    return by_frame, sets


def test_record_lossless_then_run_gives_the_detections_of_the_live_rig(bundle, invoke, tmp_path):
    synthetic = [(n, f"synthetic://{n}?size=64x96&seed=0") for n in CAMERAS]
    live = rig_file(tmp_path / "live.toml", synthetic, rate_hz=10)
    r = invoke("record", "--rig", live, "--out", tmp_path / "drive.mcap", "--max-frames", 6, "--lossless")
    assert r.exit_code == 0, r.output
    assert "stopped by max-frames" in r.output and "/front_left/image" in r.output

    from vitdeploy.data.recordings import open_recording

    with open_recording(tmp_path / "drive.mcap") as rec:
        info = rec.info()
        assert info.image_topics == [f"/{n}/image" for n in sorted(CAMERAS)]
        assert {t.message_type for t in info.topics} == {"foxglove.RawImage"}
        stamps = [[f.stamp_ns for f in rec.frames(f"/{n}/image")] for n in CAMERAS]
    assert all(len(s) == 6 for s in stamps)
    # paced cameras share the rig's trigger: frame k of every camera carries the same capture time
    assert np.ptp(np.array(stamps), axis=0).max() < 1_000_000 and np.diff(stamps[0]).min() > 90_000_000

    replay = rig_file(tmp_path / "replay.toml", [(n, f"drive.mcap#/{n}/image") for n in CAMERAS], rate_hz=0)
    direct = rig_file(tmp_path / "direct.toml", synthetic, rate_hz=0)
    for rig, out in ((replay, "from_recording"), (direct, "direct")):
        r = invoke("run", bundle.path, "--rig", rig, "--out", tmp_path / out, "--max-frames", 6, "--no-live")
        assert r.exit_code == 0, r.output
    from_recording, rec_sets = detections(tmp_path / "from_recording")
    direct_dets, direct_sets = detections(tmp_path / "direct")
    assert rec_sets == [[(n, k) for n in CAMERAS] for k in range(6)]  # every frame, in recorded order
    compared = 0
    for k, (rec_set, direct_set) in enumerate(zip(rec_sets, direct_sets, strict=True)):
        if direct_set != rec_set:  # the direct rig's free-running sync may pair frames otherwise under load
            continue
        for key in rec_set:
            ours, theirs = from_recording[key], direct_dets[key]
            assert len(ours) == len(theirs) == 5, (k, key)
            for (label_a, score_a, box_a), (label_b, score_b, box_b) in zip(ours, theirs, strict=True):
                assert label_a == label_b and score_a == pytest.approx(score_b, abs=1e-3)
                np.testing.assert_allclose(box_a, box_b, atol=0.11)
            compared += 1
    assert compared >= 3 * 4


def test_record_refuses_contradictions(invoke, tmp_path):
    live = rig_file(tmp_path / "live.toml", [("front", "synthetic://front?size=64x96")], rate_hz=10)
    r = invoke("record", "--rig", live, "--out", tmp_path / "x.mcap", "--lossless", "--format", "jpeg")
    assert r.exit_code == 1 and "contradict" in r.output and not (tmp_path / "x.mcap").exists()
    r = invoke("record", "--rig", live, "--out", tmp_path / "x.mp4", "--max-frames", 1)
    assert r.exit_code == 1 and "ending in .mcap" in r.output and not (tmp_path / "x.mp4").exists()


def test_ctrl_c_leaves_a_complete_recording(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from vitdeploy.data.recordings import open_recording

    live = rig_file(tmp_path / "live.toml", [("front", "synthetic://front?size=64x96")], rate_hz=10)
    out = tmp_path / "drive.mcap"
    proc = subprocess.Popen([sys.executable, "-m", "vitdeploy.cli.app", "record", "--rig", str(live), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        assert "recording 1 cameras" in proc.stdout.readline()
        time.sleep(3.0)
        assert not out.exists()  # written under a temporary name until it is closed
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped by interrupted" in output and "Traceback" not in output, output
    with open_recording(out) as rec:
        frames = list(rec.frames("/front/image"))
    assert len(frames) >= 3 and all(b.stamp_ns - a.stamp_ns > 90_000_000 for a, b in zip(frames, frames[1:], strict=False))
    assert not [p for p in tmp_path.iterdir() if p.name not in ("live.toml", "drive.mcap")]  # no temporary left
