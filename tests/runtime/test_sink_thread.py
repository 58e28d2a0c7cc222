"""Sinks write in their own threads: a slow sink on a live rig drops its own sets, never the
pipeline's; offline every set is written; a sink's error still stops the run."""

import threading
import time

import pytest

from vitdeploy.runtime.sink_thread import SinkThread
from vitdeploy.runtime.sinks import Sink
from vitdeploy.runtime.sync import FrameSet


class SlowSink(Sink):
    def __init__(self, sleep_s: float = 0.0, fail_at: int | None = None):
        self.sleep_s = sleep_s
        self.fail_at = fail_at
        self.written: list[int] = []
        self.closed = False
        self.gate = threading.Event()
        self.gate.set()

    def write(self, fs):
        self.gate.wait()
        time.sleep(self.sleep_s)
        if fs.index == self.fail_at:
            raise OSError("disk full")
        self.written.append(fs.index)

    def close(self):
        self.closed = True


def sets(n):
    return [FrameSet(index=i, slots=[], skew_ms=0.0) for i in range(n)]


def test_a_slow_sink_on_a_live_rig_drops_its_own_sets_and_never_waits():
    inner = SlowSink()
    inner.gate.clear()  # the sink is stuck in a write (an fsync under disk load)
    sink = SinkThread(inner, name="jsonl", drop=True, maxsize=3)
    start = time.monotonic()
    for fs in sets(20):
        sink.write(fs)
    assert time.monotonic() - start < 0.5  # the hand-off never waited for the sink
    inner.gate.set()
    sink.close(timeout=5)
    assert inner.closed
    # the set being written when it got stuck, then the newest three; the rest dropped, counted
    assert inner.written[-3:] == [17, 18, 19] and sink.dropped == 20 - len(inner.written)
    assert sink.dropped >= 16


def test_offline_every_set_is_written_in_order():
    inner = SlowSink(sleep_s=0.002)
    sink = SinkThread(inner, name="jsonl", drop=False, maxsize=2)
    for fs in sets(30):
        sink.write(fs)
    sink.close(timeout=5)
    assert inner.written == list(range(30)) and sink.dropped == 0


def test_a_sink_error_is_raised_from_the_next_hand_off():
    inner = SlowSink(fail_at=2)
    sink = SinkThread(inner, name="video", drop=False)
    with pytest.raises(OSError, match="disk full"):
        for fs in sets(50):
            sink.write(fs)
            sink.flush(timeout=5)
    sink.close(timeout=5)
    assert inner.written == [0, 1] and isinstance(sink.error, OSError) and inner.closed
