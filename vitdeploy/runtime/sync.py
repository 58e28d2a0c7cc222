"""The synchroniser: one ``FrameSet`` per tick from each camera's newest frame.

At each tick (every ``1 / rate_hz`` seconds; free-running rigs tick as soon as any camera has a
new frame) the synchroniser takes, of every camera's buffered frames not used before, the one
captured closest to the tick. A camera that has none yet is waited for at most ``tolerance``
seconds, and only if it was present in the last set (a camera already known to be late or broken
is never waited for). The first set waits at most ``startup_timeout_s`` for every camera, then
the rig runs with the cameras it has. A frame captured more than ``tolerance`` before the newest
frame of the set is too far apart to fuse and counts as missing. A missing camera keeps its slot —
filled with its last good frame (zeros before it ever delivered) and marked missing — so the batch
always has one image per camera. Frames a camera delivered that never made it into a set (too far
apart, or replaced in its buffer by newer ones) are counted per camera in ``skipped``.

A free-running rig of recordings (every source on a recording's clock) is synchronised by the
recorded stamps instead, so no frame is skipped and two runs give the same sets: each camera
offers its next unused frame (its *head*); the set's stamp is the earliest head stamp, and every
camera whose head is stamped within ``tolerance`` after it joins the set with that frame. The
others are missing from this set and offer the same head to the next one. Every frame lands in
exactly one set, and the sets depend on the stamps only, not on which camera decoded faster.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vitdeploy.runtime.sources.base import Clock, Frame, Health, Source

#: How long the first set waits for every camera's first frame (opening files, first render), s;
#: a rig's ``startup_timeout_s`` sets it.
STARTUP_TIMEOUT_S = 2.0
#: Recordings synchronised by stamp wait this long for a camera's next frame (a decode on a loaded
#: machine), s; one that takes longer is missing from that set rather than holding up the rig.
RECORDING_WAIT_S = 10.0


@dataclass
class CameraSlot:
    """One camera in a set: ``image`` (H, W, 3) uint8 in ``channel_order`` (RGB, or BGR where the
    bundle's graph takes the decoder's BGR); ``capture_time`` monotonic seconds, or None when
    missing (then ``image`` is the last good frame or zeros and must not be reported). Where the
    camera decoded into a row of a reused batch (``runtime.batches.CameraRows``), ``image`` is that
    row and ``hold`` keeps it from being overwritten until the pipeline let it go (copied, or read
    by inference)."""

    camera: str
    image: np.ndarray
    missing: bool
    health: Health
    capture_time: float | None = None
    frame_index: int | None = None
    channel_order: str = "RGB"
    stamp_ns: int | None = None  # capture time in the source's clock, ns (None when missing)
    clock: Clock | None = None
    hold: Any = None  # the set's hold on the camera-batch row ``image`` lives in (``RowHold``), if any

    def rgb(self) -> np.ndarray:
        """The image in RGB order (a copy only where it is BGR)."""
        return self.image if self.channel_order == "RGB" else np.ascontiguousarray(self.image[..., ::-1])


@dataclass
class FrameSet:
    """One synchronised set of camera frames and, as it moves through the pipeline, its results.

    ``stamps`` holds ``time.monotonic`` seconds for ``tick`` (when the set was due), ``sync`` (when
    it was assembled) and the start and end of every stage (``preprocess_start``, ...). ``skew_ms``
    is max - min capture time of the present cameras, ms. ``stamp_ns`` is the set's time in the
    sources' clock (the earliest stamp of its present cameras, ns: a recording's time, or UNIX time)
    and ``wall_time`` the rig's UNIX time when it was assembled, s.
    """

    index: int
    slots: list[CameraSlot]
    skew_ms: float
    stamps: dict[str, float] = field(default_factory=dict)
    stamp_ns: int | None = None
    wall_time: float = 0.0
    batch: np.ndarray | None = None  # the model input: (N, 3, h, w) float, or (N, Hs, Ws, 3) raw frames
    lease: Any = None  # the reused batch (``runtime.batches.BatchLease``) this set holds, if any
    letterboxes: list[Any] | None = None
    outputs: dict[str, np.ndarray] | None = None
    results: Any = None  # a head's decode: a CameraResult per camera, or a rig-level SetResult

    @property
    def cameras(self) -> list[str]:
        return [s.camera for s in self.slots]

    @property
    def missing(self) -> list[str]:
        return [s.camera for s in self.slots if s.missing]

    @property
    def oldest_capture(self) -> float | None:
        times = [s.capture_time for s in self.slots if s.capture_time is not None]
        return min(times) if times else None


class Synchronizer:
    """Assembles frame sets from ``sources``. ``rate_hz`` 0 is free-running; ``tolerance_s`` is
    the sync tolerance in seconds; ``fallback_size`` (H, W) pixels sizes the zero frame of a camera
    that never delivered."""

    def __init__(self, sources: list[Source], *, rate_hz: float, tolerance_s: float,
                 fallback_size: tuple[int, int], epoch: float | None = None,
                 startup_timeout_s: float = STARTUP_TIMEOUT_S):
        """``epoch`` (monotonic seconds): the paced sources' shared start, so ticks fall on frames."""
        self.sources = sources
        self.rate_hz = rate_hz
        self.tolerance_s = tolerance_s
        self.fallback_size = fallback_size
        self.startup_timeout_s = startup_timeout_s
        self.empty_ticks = 0  # ticks where no camera had a usable frame (no set emitted)
        self._cond = threading.Condition()
        for s in sources:
            s.add_listener(self._cond)
        self._last_good: dict[str, np.ndarray] = {}
        self._last_hold: dict[str, Any] = {}  # the hold on the row a last good frame lives in
        self._used: dict[str, int] = {s.camera: -1 for s in sources}
        self.skipped: dict[str, int] = {s.camera: 0 for s in sources}  # delivered, never in a set
        self._present_last: set[str] = {s.camera for s in sources}
        self._count = 0
        self._t0: float | None = epoch
        self._tick = 0
        #: free-running recordings: sets by recorded stamp (module docstring)
        self.by_stamp = rate_hz <= 0 and bool(sources) and all(s.clock is Clock.RECORDING for s in sources)

    def all_finished(self) -> bool:
        """Every source ended or failed, and every frame they delivered was used."""
        return all(s.health().finished and self._fresh(s) is None for s in self.sources)

    def next_set(self, stop: threading.Event) -> FrameSet | None:
        """Block until the next set is due and assembled; None when ``stop`` is set or every
        source has finished."""
        if self.by_stamp:
            return self._next_by_stamp(stop)
        while not stop.is_set():
            tick = self._wait_for_tick(stop)
            if tick is None:
                return None
            first = self._count == 0
            limit = self.startup_timeout_s if first else self.tolerance_s
            self._wait_for_cameras(stop, time.monotonic() + limit, everyone=first,
                                   tick=tick if self.rate_hz > 0 else None)
            fs = self._assemble(tick)
            if fs is not None:
                return fs
            self.empty_ticks += 1
            if self.all_finished():
                return None
        return None

    # ---- steps --------------------------------------------------------------------------------
    def _fresh(self, source: Source, near: float | None = None) -> Frame | None:
        """The source's unused frame captured closest to ``near`` (monotonic s), or its newest."""
        if near is None:
            frame = source.newest()
            return frame if frame is not None and frame.index > self._used[source.camera] else None
        frames = [f for f in source.buffered() if f.index > self._used[source.camera]]
        return min(frames, key=lambda f: abs(f.capture_time - near), default=None)

    def _consume(self, source: Source, frame: Frame, *, used: bool) -> None:
        """Mark ``frame`` and every frame before it consumed; count the ones no set will hold."""
        self.skipped[source.camera] += frame.index - self._used[source.camera] - (1 if used else 0)
        source.take(frame, set_index=self._count if used else None)
        self._used[source.camera] = frame.index

    def _wait_for_tick(self, stop: threading.Event) -> float | None:
        if self.rate_hz > 0:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now
            period = 1.0 / self.rate_hz
            due = self._t0 + self._tick * period
            # Fell behind, or the first set took its start-up wait: skip to the next tick to come
            # (a burst of sets would only be dropped by the next stage).
            if now - due > period or (self._count == 1 and now > due):
                self._tick = int((now - self._t0) / period) + 1
                due = self._t0 + self._tick * period
            self._tick += 1
            if stop.wait(max(0.0, due - now)):
                return None
            return due
        with self._cond:  # free-running: the tick is the first new frame of any camera
            while not stop.is_set():
                if any(self._fresh(s) is not None for s in self.sources):
                    return time.monotonic()
                if self.all_finished():
                    return None
                self._cond.wait(0.05)
        return None

    def _wait_for_cameras(self, stop: threading.Event, deadline: float, *, everyone: bool,
                          tick: float | None) -> None:
        """Wait until every camera worth waiting for has a frame for ``tick`` (not more than the
        tolerance before it; any new frame on a free-running rig), or until ``deadline``."""
        def ready(s: Source) -> bool:
            frame = self._fresh(s, tick)
            return frame is not None and (tick is None or frame.capture_time >= tick - self.tolerance_s)

        def waiting_for() -> list[Source]:
            return [s for s in self.sources
                    if not ready(s) and not s.health().finished
                    and (everyone or s.camera in self._present_last)]

        with self._cond:
            while not stop.is_set() and waiting_for():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(min(remaining, 0.05))

    def _assemble(self, tick: float) -> FrameSet | None:
        frames = {s.camera: self._fresh(s, tick if self.rate_hz > 0 else None) for s in self.sources}
        captured = [f.capture_time for f in frames.values() if f is not None]
        if not captured:
            return None
        newest = max(captured)
        slots, present = [], []
        for s in self.sources:
            frame = frames[s.camera]
            health = s.health()
            slot = None
            if frame is not None and newest - frame.capture_time <= self.tolerance_s:
                slot = self._use(s, frame, health)
                if slot is not None:
                    present.append(frame.capture_time)
            elif frame is not None:  # too far apart from the others: skip it, take a newer one next tick
                self._consume(s, frame, used=False)
            slots.append(slot or self._missing(s, health))
        if not present:
            return None
        return self._emit(slots, skew_ms=(max(present) - min(present)) * 1e3, tick=tick)

    def _emit(self, slots: list[CameraSlot], *, skew_ms: float, tick: float) -> FrameSet:
        self._present_last = {slot.camera for slot in slots if not slot.missing}
        stamps = [slot.stamp_ns for slot in slots if not slot.missing and slot.stamp_ns is not None]
        fs = FrameSet(index=self._count, slots=slots, skew_ms=skew_ms, stamps={"tick": tick, "sync": time.monotonic()},
                      stamp_ns=min(stamps) if stamps else None, wall_time=time.time())
        self._count += 1
        return fs

    def _use(self, source: Source, frame: Frame, health: Health) -> CameraSlot | None:
        """``frame`` joins the set (and becomes the camera's last good frame); None if its row was
        given to a newer frame before the set could hold it (then it is skipped)."""
        hold = None
        if frame.hold is not None:
            hold = frame.hold.claim()
            if hold is None:
                self._consume(source, frame, used=False)
                return None
            previous = self._last_hold.pop(source.camera, None)
            if previous is not None:
                previous.release()
            self._last_hold[source.camera] = hold.claim()
        elif (previous := self._last_hold.pop(source.camera, None)) is not None:
            previous.release()
        self._consume(source, frame, used=True)
        self._last_good[source.camera] = frame.image
        return CameraSlot(source.camera, frame.image, False, health, frame.capture_time, frame.index,
                          source.channel_order, frame.stamp_ns, frame.clock, hold=hold)

    def _missing(self, source: Source, health: Health) -> CameraSlot:
        """The slot of a camera missing from this set: its last good frame, or zeros."""
        last = self._last_hold.get(source.camera)
        return CameraSlot(source.camera, self._fill(source.camera), True, health, channel_order=source.channel_order,
                          hold=None if last is None else last.claim())

    # ---- recordings, free-running: sets by recorded stamp -------------------------------------
    def _head(self, source: Source) -> Frame | None:
        """The source's oldest unused frame."""
        return next((f for f in source.buffered() if f.index > self._used[source.camera]), None)

    def _next_by_stamp(self, stop: threading.Event) -> FrameSet | None:
        """The next set of a free-running rig of recordings (module docstring); None at the end."""
        limit = max(RECORDING_WAIT_S, self.startup_timeout_s if self._count == 0 else 0.0)
        heads: dict[str, Frame | None] = {}
        while not heads or not any(heads.values()):
            deadline = time.monotonic() + limit
            with self._cond:  # every camera still reading offers its head, or runs out of time
                while not stop.is_set() and time.monotonic() < deadline and any(
                        self._head(s) is None and not s.health().finished for s in self.sources):
                    self._cond.wait(0.05)
            if stop.is_set():
                return None
            heads = {s.camera: self._head(s) for s in self.sources}
            if not any(heads.values()) and self.all_finished():
                return None
        stamped = [f.stamp_ns for f in heads.values() if f is not None]
        tick_ns, tolerance_ns = min(stamped), round(self.tolerance_s * 1e9)
        slots, present = [], []
        for s in self.sources:
            frame, health = heads[s.camera], s.health()
            slot = None
            if frame is not None and frame.stamp_ns - tick_ns <= tolerance_ns:  # else it belongs to a later set
                slot = self._use(s, frame, health)
                if slot is not None:
                    present.append(frame.stamp_ns)
            slots.append(slot or self._missing(s, health))
        if not present:  # every head's row was lost: ask again
            return self._next_by_stamp(stop)
        return self._emit(slots, skew_ms=(max(present) - min(present)) / 1e6, tick=time.monotonic())

    def _fill(self, camera: str) -> np.ndarray:
        image = self._last_good.get(camera)
        if image is None:
            h, w = self.fallback_size
            image = np.zeros((h, w, 3), np.uint8)
            self._last_good[camera] = image
        return image
