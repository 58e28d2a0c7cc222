"""The synchroniser: one set per tick, missing cameras marked (never waited for), skew measured."""

import threading
import time

import numpy as np
from fakes import ScriptedSource, StallingSource, good

from vitdeploy.runtime.sources import Health
from vitdeploy.runtime.sync import Synchronizer


def start(sources):
    epoch = time.monotonic()
    for s in sources:
        s.start(epoch)
    return epoch


def test_a_silent_camera_is_marked_missing_not_waited_for():
    cams = [ScriptedSource("a", good, fps=20), ScriptedSource("b", good, fps=20),
            StallingSource("c", good=0, fps=20, stall_timeout_s=0.2)]
    epoch = start(cams)
    sync = Synchronizer(cams, rate_hz=20, tolerance_s=0.03, fallback_size=(16, 24), epoch=epoch,
                        startup_timeout_s=0.3)
    stop = threading.Event()
    try:
        sets = [sync.next_set(stop) for _ in range(6)]
        t0 = time.monotonic()
        sets += [sync.next_set(stop) for _ in range(4)]
        per_set = (time.monotonic() - t0) / 4
    finally:
        for s in cams:
            s.stop(timeout=0.5)
    assert per_set < 0.05 + 0.03 + 0.02  # one tick, at most one tolerance of waiting
    for fs in sets:
        assert fs.cameras == ["a", "b", "c"] and fs.missing == ["c"]
        c = fs.slots[2]
        assert c.capture_time is None and c.image.shape == (16, 24, 3) and not c.image.any()
        assert 0 <= fs.skew_ms < 30
    assert sets[-1].slots[2].health is Health.STALLED
    frames = [fs.slots[0].frame_index for fs in sets]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)  # each frame used once


def test_free_running_uses_every_frame_once_and_ends_with_the_sources():
    cams = [ScriptedSource(n, lambda k: good(k) if k < 8 else None, paced=False) for n in ("a", "b")]
    start(cams)
    sync = Synchronizer(cams, rate_hz=0, tolerance_s=0.05, fallback_size=(16, 24))
    stop = threading.Event()
    sets = []
    try:
        while (fs := sync.next_set(stop)) is not None:
            sets.append(fs)
    finally:
        for s in cams:
            s.stop()
    assert [fs.slots[0].frame_index for fs in sets] == list(range(8))
    assert all(not fs.missing for fs in sets)
    assert all(np.array_equal(fs.slots[1].image, good(fs.slots[1].frame_index)) for fs in sets)
