"""A camera source: one thread that reads frames into a small newest-first buffer.

The thread is the only place a camera can block, so one camera that stalls, errors or ends never
holds up the others (DESIGN.md decision 6). Its health is reported, not raised: ``ok``, ``stalled``
(no frame for ``stall_timeout_s``), ``reconnecting`` (a live capture being reopened), ``ended``
(a file ran out) or ``failed`` (gave up), with the last error.

Pacing: a *paced* file or synthetic source publishes frame k at ``epoch + k / fps`` seconds, like a
hardware-triggered camera, and stamps it with that time as its capture time (all cameras share the
epoch, so their frames line up even when one decodes or renders slower). An *unpaced* one
(free-running rigs) publishes the next frame as soon as the last was taken, so offline runs and
benchmarks skip nothing and never spin. Live captures deliver at the device's own rate.

Time (DESIGN.md decision 9): a frame's ``capture_time`` (``time.monotonic`` s) measures latency;
its ``stamp_ns`` is the capture time in the source's clock: a recording's header stamp, or UNIX
time for live cameras, files and synthetic cameras. A paced recording publishes each frame at
``epoch + (stamp - origin)`` (origin: the rig's earliest first stamp): it plays on its own clock.
"""

from __future__ import annotations

import abc
import collections
import threading
import time
from typing import Any

import numpy as np

from vitdeploy.errors import DataError
from vitdeploy.runtime.sources.frames import (
    Clock,
    Frame,
    FrameError,
    Health,
    SourceStatus,
    StampedImage,
    check_frame,
    is_view_of,
    let_go,
)

__all__ = ["Clock", "Frame", "FrameError", "Health", "Source", "SourceStatus", "StampedImage"]


class Source(abc.ABC):
    """Subclasses implement ``_open``, ``_read`` and ``_close``; this class runs them in a thread.

    ``_read`` returns an (H, W, 3) uint8 frame in ``channel_order``, None at the end of the
    stream, raises ``FrameError`` for one bad frame, and any other exception for a broken stream.
    Frames of the wrong shape or dtype are counted as corrupt and skipped, never handed on.

    ``channel_order``: the order asked for (RGB, or BGR for a graph that takes the decoder's BGR
    as it comes); a source delivers it if it is one of its ``channel_orders``, else RGB — the
    frame's order is the source's ``channel_order`` attribute either way.

    A source whose ``decodes_into`` is True takes ``_read(out=array)`` and decodes into ``out``
    (an (H, W, 3) uint8 row of a camera batch) where the frame fits it; given rows
    (``use_rows``), it reads each frame into the next one free (``runtime.batches.CameraRows``),
    so the pipeline hands the batch to the model without copying. Its taken frames then leave the
    buffer (their rows go back).
    """

    #: live sources (cameras, network streams) are reopened when they end or fail
    live: bool = False
    #: the channel orders this source delivers without a conversion of its own (decoders: BGR too)
    channel_orders: tuple[str, ...] = ("RGB",)
    #: the clock of the frames' ``stamp_ns``; recording sources return ``StampedImage`` from ``_read``
    clock: Clock = Clock.WALL
    #: ``_read(out=row)`` decodes into ``row`` (see the class docstring)
    decodes_into: bool = False

    def __init__(self, camera: str, *, fps: float, paced: bool = True, buffer: int = 2,
                 stall_timeout_s: float | None = None, reconnect_interval_s: float = 1.0,
                 reconnect_attempts: int = 0, channel_order: str = "RGB"):
        if buffer < 1:
            raise DataError(f"source {camera!r}: buffer must hold at least 1 frame, got {buffer}")
        if channel_order.upper() not in ("RGB", "BGR"):
            raise DataError(f"source {camera!r}: channel order must be RGB or BGR, got {channel_order!r}")
        self.channel_order = channel_order.upper() if channel_order.upper() in self.channel_orders else "RGB"
        self.camera = camera
        self.fps = float(fps)
        self.paced = paced
        # Half a second or five frame periods without a frame, whichever is longer, is a stall.
        self.stall_timeout_s = stall_timeout_s if stall_timeout_s is not None else max(0.5, 5.0 / max(fps, 1e-6))
        self.reconnect_interval_s = reconnect_interval_s
        self.reconnect_attempts = reconnect_attempts
        self._buffer = buffer
        self._frames: collections.deque[Frame] = collections.deque()
        self._rows: Any = None  # ``CameraRows`` this source decodes into, and its row
        self._row = 0
        self._reads = 0
        self._taken_set = -1  # the frame set the newest taken frame went into (-1: none yet)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[threading.Condition] = []
        self._health = Health.STARTING
        self._delivered = 0
        self._taken = -1  # index of the newest frame a consumer took
        self._corrupt = 0
        self._reconnects = 0
        self._last_error: str | None = None
        self._last_frame_time: float | None = None
        self._started_at = 0.0
        self._origin_ns: int | None = None  # recordings: the stamp that plays at the epoch
        self._epoch_set = threading.Event()  # paced frames are due from the epoch on
        self._opened = threading.Event()  # opened once, or the thread ended: nothing to wait for

    # ---- what subclasses implement ------------------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _read(self) -> np.ndarray | None: ...

    def _close(self) -> None:  # noqa: B027 - sources without resources need not override
        """Release the stream."""

    def describe(self) -> str:
        return type(self).__name__

    # ---- lifecycle ----------------------------------------------------------------------------
    def use_rows(self, rows: Any, row: int) -> bool:
        """Decode into row ``row`` of ``rows`` (``runtime.batches.CameraRows``) from now on, if this
        source can (``decodes_into``); call before ``start``. Returns whether it will."""
        if not self.decodes_into or self._thread is not None:
            return False
        self._rows, self._row = rows, row
        return True

    def add_listener(self, cond: threading.Condition) -> None:
        """``cond.notify_all()`` is called after every new frame and every change of health."""
        self._listeners.append(cond)

    def start(self, epoch: float | None = None, *, deferred: bool = False) -> None:
        """Start reading; paced frames are due at ``epoch + k / fps`` (``time.monotonic`` seconds;
        default now). ``deferred``: open now, but hold paced frames until ``set_epoch`` — so that
        every camera of a rig can open (files, first render) before their shared clock starts."""
        if self._thread is not None:
            return
        self._started_at = time.monotonic() if epoch is None else epoch
        if not deferred:
            self._epoch_set.set()
        self._thread = threading.Thread(target=self._run, name=f"source-{self.camera}", daemon=True)
        self._thread.start()

    def set_epoch(self, epoch: float, *, origin_ns: int | None = None) -> None:
        """Start the clock of a source started ``deferred``: paced frame k is due at ``epoch + k / fps``;
        a paced recording's frame stamped ``s`` at ``epoch + (s - origin_ns) / 1e9`` (default
        origin: its own first stamp)."""
        with self._cond:
            self._started_at = epoch
            self._origin_ns = origin_ns
        self._epoch_set.set()

    def first_stamp_ns(self) -> int | None:
        """Recordings: the first frame's stamp once opened (``start_cameras`` starts at the earliest)."""
        return None

    def wait_opened(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until the source opened (or gave up); False if not yet."""
        return self._opened.wait(max(0.0, timeout))

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop and wait up to ``timeout`` seconds; a read blocked in a driver
        is left behind (the thread is a daemon) rather than holding up the rig."""
        self.request_stop()
        self.join(timeout)

    def request_stop(self) -> None:
        """Ask the thread to stop and return at once (``stop_sources`` stops many in parallel)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        try:
            self._interrupt()
        except Exception as exc:  # noqa: BLE001 - stopping must go on whatever the driver says
            self._set_error(f"stopping: {type(exc).__name__}: {exc}")

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread; False if it is still blocked (abandoned)."""
        if self._thread is not None:
            self._thread.join(max(0.0, timeout))
            return not self._thread.is_alive()
        return True

    def _interrupt(self) -> None:  # noqa: B027 - sources whose reads always return need not override
        """Called from another thread by ``request_stop``: unblock a read that may never return
        (e.g. kill the process it waits on)."""

    # ---- what consumers call ------------------------------------------------------------------
    def newest(self) -> Frame | None:
        with self._cond:
            return self._frames[-1] if self._frames else None

    def buffered(self) -> list[Frame]:
        """The frames in the buffer, oldest first (at most ``buffer``)."""
        with self._cond:
            return list(self._frames)

    def take(self, frame: Frame, *, set_index: int | None = None) -> None:
        """Mark ``frame`` (and everything before it) consumed; an unpaced source then reads on.
        ``set_index``: the frame set it went into (cameras decoding into rows aim for the next)."""
        with self._cond:
            if set_index is not None:
                self._taken_set = set_index
            if frame.index > self._taken:
                self._taken = frame.index
                while self._rows is not None and self._frames and self._frames[0].index <= self._taken:
                    let_go(self._frames.popleft())
                self._cond.notify_all()

    @property
    def taken(self) -> int:
        return self._taken

    def health(self) -> Health:
        with self._cond:
            state = self._health
            if state in (Health.OK, Health.STARTING):
                last = self._last_frame_time if self._last_frame_time is not None else self._started_at
                if self._started_at and time.monotonic() - last > self.stall_timeout_s:
                    return Health.STALLED
            return state

    def status(self) -> SourceStatus:
        health = self.health()
        with self._cond:
            age = None if self._last_frame_time is None else time.monotonic() - self._last_frame_time
            return SourceStatus(camera=self.camera, health=health, frames=self._delivered, corrupt=self._corrupt,
                                reconnects=self._reconnects, last_error=self._last_error, last_frame_age_s=age)

    # ---- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._run_until_done()
        finally:
            self._opened.set()

    def _run_until_done(self) -> None:
        failures = 0
        while not self._stop.is_set():
            error = None
            try:
                self._open()
                self._opened.set()
                delivered_before = self._delivered
                self._pump()
                if self._delivered > delivered_before:
                    failures = 0
            except Exception as exc:  # any driver error: report it and decide below
                error = f"{type(exc).__name__}: {exc}"
            finally:
                try:
                    self._close()
                except Exception as exc:
                    error = error or f"closing: {type(exc).__name__}: {exc}"
            if self._stop.is_set():
                return
            if error is not None:
                self._set_error(error)
            failures += 1
            if not self.live or (self.reconnect_attempts and failures > self.reconnect_attempts):
                if self.live:
                    self._set_error(f"gave up after {failures} attempts; last error: {self._last_error}")
                self._set_health(Health.FAILED if error is not None or self.live else Health.ENDED)
                return
            self._set_health(Health.RECONNECTING)
            self._reconnects += 1
            self._stop.wait(self.reconnect_interval_s)

    def _pump(self) -> None:
        """Read until the stream ends (return) or breaks (raise)."""
        period = 1.0 / self.fps if self.fps > 0 else 0.0
        k = 0
        hold = None  # the row this frame was decoded into, until it is published
        try:
            while not self._stop.is_set():
                if hold is not None:
                    hold.release()
                hold = self._next_row()
                try:
                    image = self._read() if hold is None else self._read(out=hold.array)
                except FrameError as exc:
                    self._count_corrupt(str(exc))
                    continue
                if image is None:
                    return
                stamp_ns = None
                if isinstance(image, StampedImage):
                    image, stamp_ns = image.image, image.stamp_ns
                problem = check_frame(image)
                if problem:
                    self._count_corrupt(problem)
                    continue
                if hold is not None and not is_view_of(image, hold.array):  # did not fit the row: its own array
                    hold.release()
                    hold = None
                go, captured, k = self._due(k, period, stamp_ns)
                if not go:
                    return
                self._publish(image, captured, stamp_ns, hold)
                hold = None
        finally:
            if hold is not None:
                hold.release()

    def _next_row(self) -> Any:
        """A free row to decode the next read into, in the batch of the set the frame should join
        (after the last set a frame of ours joined, and the frames published but not taken yet);
        None: no rows, or that row is still held."""
        self._reads += 1
        if self._rows is None:
            return None
        with self._cond:
            expected = self._taken_set + 1 + max(0, self._delivered - 1 - self._taken)
        return self._rows.acquire(self._row, expected, self._reads - 1)

    def _due(self, k: int, period: float, stamp_ns: int | None) -> tuple[bool, float | None, int]:
        """Wait until the frame just read is due. Returns whether to publish it (False: stopping),
        its capture time (None: now, when it is published) and the next paced frame number."""
        captured = None  # live and unpaced frames: the moment they arrived
        if self.live:
            pass  # the device sets the pace
        elif self.paced and stamp_ns is not None:
            if not self._wait_epoch():
                return False, None, k
            origin = self._origin_ns if self._origin_ns is not None else self.first_stamp_ns() or stamp_ns
            # on the recording's clock: a late frame is published late, never skipped ahead of
            captured = self._started_at + (stamp_ns - origin) / 1e9
            if self._stop.wait(max(0.0, captured - time.monotonic())):
                return False, None, k
        elif self.paced and period:
            if not self._wait_epoch():
                return False, None, k
            due = self._started_at + k * period
            now = time.monotonic()
            if now - due > period:  # fell behind (slow read): skip ahead rather than burst
                k = int((now - self._started_at) / period)
                due = self._started_at + k * period
            k += 1
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return False, None, k
            # A paced frame is "triggered" at its due time, like a hardware-triggered camera: a
            # camera slow to decode or render its first frame does not make the others' look old.
            captured = due
        elif not self._wait_taken():
            return False, None, k
        return True, captured, k

    def _wait_epoch(self) -> bool:
        """Wait until the rig's clock started (the first frame is read before it); False when stopping."""
        while not self._epoch_set.wait(0.1):
            if self._stop.is_set():
                return False
        return True

    def _wait_taken(self) -> bool:
        """Unpaced: wait until the consumer took the last frame; False when stopping."""
        with self._cond:
            while self._taken < self._delivered - 1 and not self._stop.is_set():
                self._cond.wait(0.1)
        return not self._stop.is_set()

    def _publish(self, image: np.ndarray, captured: float | None = None, stamp_ns: int | None = None,
                 hold: Any = None) -> None:
        now = time.monotonic()
        captured = now if captured is None else captured
        if stamp_ns is None:  # the wall-clock time of the capture (a paced frame's due time)
            stamp_ns = time.time_ns() - round((now - captured) * 1e9)
        with self._cond:
            if len(self._frames) >= self._buffer:  # newest first: the oldest frame goes
                let_go(self._frames.popleft())
            self._frames.append(Frame(self.camera, self._delivered, image, captured, stamp_ns, self.clock, hold))
            self._delivered += 1
            self._last_frame_time = now
            self._health = Health.OK
        self._notify()

    def _count_corrupt(self, message: str) -> None:
        with self._cond:
            self._corrupt += 1
            self._last_error = f"corrupt frame: {message}"

    def _set_error(self, message: str) -> None:
        with self._cond:
            self._last_error = message

    def _set_health(self, health: Health) -> None:
        with self._cond:
            self._health = health
        self._notify()

    def _notify(self) -> None:
        for cond in self._listeners:
            with cond:
                cond.notify_all()
