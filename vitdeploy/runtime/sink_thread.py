"""A sink in its own thread, so writing files (a JSONL fsync, a video encode) is off the inference path.

The pipeline's sink stage only hands each finished frame set to every ``SinkThread`` and records
its statistics. Each sink then writes from its own bounded queue: on a live rig (``drop=True``) a
sink that falls behind drops its *own* oldest waiting sets (counted in ``dropped``) and never holds
up the pipeline; on a free-running rig (offline runs, benchmarks: every set must be written) a full
queue makes the hand-off wait, so nothing is lost. An error in the sink is raised from the next
hand-off, so it stops the run as an error of the sink stage, as a sink written inline would.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path

from vitdeploy.runtime.sinks import Sink
from vitdeploy.runtime.sync import FrameSet

#: Frame sets waiting for one sink. Writing takes a varying time (an fsync under disk load, the
#: first video frame opening its encoder: 0.1 s on a loaded CPU); a few sets of slack keep such a
#: hiccup from dropping output.
SINK_THREAD_QUEUE = 8


class SinkThread(Sink):
    """Runs ``sink.write`` in a thread named ``sink-<name>`` from a queue of ``maxsize`` sets."""

    def __init__(self, sink: Sink, *, name: str, drop: bool, maxsize: int = SINK_THREAD_QUEUE):
        self.sink = sink
        self.name = name
        self.drop = drop
        self.maxsize = maxsize
        self.dropped = 0
        self.written = 0
        self.error: BaseException | None = None
        self._items: collections.deque[FrameSet] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False  # a set is being written
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._thread.start()

    @property
    def reads_images(self) -> bool:
        return self.sink.reads_images

    def write(self, fs: FrameSet) -> None:
        """Queue ``fs`` for the sink (dropping its oldest waiting set, or waiting, when full)."""
        with self._cond:
            while not self.drop and len(self._items) >= self.maxsize and self.error is None:
                self._cond.wait()
            if self.error is not None:
                raise self.error
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(fs)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    return
                fs = self._items.popleft()
                self._busy = True
            try:
                self.sink.write(fs)
            except BaseException as exc:  # handed to the pipeline by the next write, or by close
                with self._cond:
                    self.error = exc
                    self._busy = False
                    self._items.clear()
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = False
                self.written += 1
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued set is written (or the sink failed); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._items or self._busy) or self.error is not None, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, stop the thread, close the sink. A sink stuck in a write longer
        than ``timeout`` seconds is left behind (its thread is a daemon) but still closed."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self.sink.close()

    def files(self) -> list[Path]:
        return self.sink.files()
