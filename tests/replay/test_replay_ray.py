"""Replay on a local Ray with 2 workers: per-recording outputs and report for videos, a folder of
per-camera videos and an MCAP file, a corrupt recording,
re-runs that recompute nothing, a worker killed mid-recording, and detections equal to `vitdeploy
run` in one process. One Ray for the whole module (it takes seconds to start)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from replay_data import write_drive

from vitdeploy.replay import (
    ReplayOptions,
    detection_views,
    find_recordings,
    recording_rig,
    replay,
    replay_settings,
)
from vitdeploy.runtime.run import RunOptions, run_rig

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """A local Ray of 2 CPUs for the module; `replay` uses a Ray already running as it is."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024**2)
    yield
    ray.shutdown()


def single_process_views(bundle, recording, precision, out, *, settings):
    """The detections of `vitdeploy run` free-running on ``recording`` in this process (run_rig on
    the recording's rig, as `vitdeploy run --rig rig.<precision>.toml` runs it)."""
    rig = recording_rig(recording, model=settings.model(precision), jsonl="frames.jsonl")
    run_rig(rig, bundle=bundle, options=RunOptions(out=out, handle_sigint=False))
    return detection_views(out / "frames.jsonl")


def mtimes(folder):
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_two_workers_replay_five_recordings_as_one_process_would(replay_bundle, drives, tmp_path):
    out = tmp_path / "R"
    options = ReplayOptions(out=out, workers=2, quiet=True)
    report = replay(replay_bundle, drives, options=options)
    by_id = {r.recording.id: r for r in report.results}
    assert sorted(by_id) == ["corrupt", "drive0", "drive1", "drive2", "recorded", "rig2"]
    assert [r.recording.id for r in report.failed] == ["corrupt"] and "cannot open video" in by_id["corrupt"].reason
    assert len(report.complete) == 5 and report.scheduler == "on Ray (local)"
    assert len({r.worker for r in report.complete}) == 2, "both workers replayed recordings"
    for name in ("report.json", "report.md", "report.png"):
        assert (out / name).is_file()
    settings = replay_settings(replay_bundle, options)
    for recording in find_recordings(drives):
        if recording.id == "corrupt":
            continue
        folder = out / "recordings" / recording.id
        assert (folder / "summary.json").is_file() and (folder / "complete.json").is_file()
        for precision in settings.precisions:
            on_ray = detection_views(folder / f"{precision.value}.jsonl")
            alone = single_process_views(replay_bundle, recording, precision, tmp_path / recording.id / precision.value,
                                         settings=settings)
            assert on_ray == alone and sum(len(c["results"]) for v in on_ray for c in v["cameras"]) > 0

    before = mtimes(out / "recordings")
    again = replay(replay_bundle, drives, options=options)
    assert again.replayed == [] and all(r.reused for r in again.complete) and len(again.complete) == 5
    assert [r.recording.id for r in again.failed] == ["corrupt"]  # tried again: it may have been fixed
    assert mtimes(out / "recordings") == before


def test_a_worker_killed_mid_recording_is_retried_with_the_same_result(replay_bundle, tmp_path):
    drive = write_drive(tmp_path / "data" / "long.mp4", bundle=replay_bundle, seed=11, frames=40)
    out = tmp_path / "R"
    options = ReplayOptions(out=out, workers=2, quiet=True, max_retries=1)
    killed: list[int] = []

    def kill_the_first_worker_mid_recording() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for staging in (out / "recordings").glob(".long.staging-*"):
                jsonl = staging / "fp32.jsonl"
                if jsonl.is_file() and jsonl.stat().st_size > 0:  # results are being written
                    pid = int(staging.name.split(".staging-")[1].split("-")[0])
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_first_worker_mid_recording, daemon=True)
    killer.start()
    (result,) = replay(replay_bundle, drive, options=options).results
    killer.join(5)
    assert killed, "the recording finished before it could be killed"
    assert result.ok, result.reason
    assert int(result.worker.rsplit(":", 1)[1]) != killed[0], "the retry ran in a new worker process"
    settings = replay_settings(replay_bundle, options)
    (recording,) = find_recordings(drive)
    for precision in settings.precisions:
        views = detection_views(out / "recordings" / "long" / f"{precision.value}.jsonl")
        assert len(views) == 40
        assert views == single_process_views(replay_bundle, recording, precision, tmp_path / precision.value,
                                             settings=settings)
    assert not list((out / "recordings").glob(".*")), "the killed attempt's staging folder is cleaned up"
