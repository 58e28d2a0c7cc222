"""Run statistics: per-camera counts, drops, and per-set latency samples with percentiles.

Latencies are milliseconds per frame set. ``end_to_end`` runs from the capture of the set's oldest
present frame to the moment its results are handed to the sinks; ``sync`` from that capture to
the set's assembly; ``preprocess``, ``infer``, ``postprocess`` and ``sink`` are the stages' own
times (queue waits between stages are in ``end_to_end`` only; ``sink`` is the hand-off to the
sinks' own threads, ``runtime.sink_thread``). The raw samples (of the latest
``MAX_SAMPLES`` sets) are kept so that `bench` and `eval` can compute their own statistics.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitdeploy.runtime.sources.base import Health, Source
from vitdeploy.runtime.sync import FrameSet

#: Latency sample names, in pipeline order.
LATENCIES = ("sync", "preprocess", "infer", "postprocess", "sink", "end_to_end")
#: Per-set samples kept (the latest): 100,000 sets are 2.8 h at 10 sets/s and about 30 MB; a rig
#: that runs for days must not grow without bound. Counts (sets, misses, per camera) are exact.
MAX_SAMPLES = 100_000
_STAGE_STAMPS = {"preprocess": ("preprocess_start", "preprocess_end"), "infer": ("infer_start", "infer_end"),
                 "postprocess": ("postprocess_start", "postprocess_end"), "sink": ("sink_start", "sink_end")}


def set_latencies_ms(fs: FrameSet) -> dict[str, float]:
    """The latencies of one frame set (ms) from its stamps; stages not reached yet are left out."""
    s = fs.stamps
    out = {name: (s[b] - s[a]) * 1e3 for name, (a, b) in _STAGE_STAMPS.items() if a in s and b in s}
    oldest = fs.oldest_capture
    if oldest is not None:
        out["sync"] = (s["sync"] - oldest) * 1e3
        if "sink_start" in s:
            out["end_to_end"] = (s["sink_start"] - oldest) * 1e3
    return out


def percentiles(samples: np.ndarray | list[float], qs: tuple[float, ...] = (50, 95, 99)) -> dict[float, float]:
    """q -> value; NaN for no samples."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        return {q: float("nan") for q in qs}
    return {q: float(v) for q, v in zip(qs, np.percentile(arr, qs), strict=True)}


@dataclass
class CameraSummary:
    """One camera over the run: frames the source delivered (``frames_in``), frames that reached
    the output in a set (``frames_out``), delivered frames no set used (``skipped``: too far apart
    in time, or replaced by newer ones before a set was due), sets it was missing from, corrupt
    frames skipped, reconnections, and its health and last error at the end."""

    name: str
    source: str
    frames_in: int
    frames_out: int
    missing: int
    corrupt: int
    reconnects: int
    health: Health
    last_error: str | None
    skipped: int = 0

    @property
    def lost(self) -> bool:
        """The camera was not delivering when the run ended: it failed, stalled, was being
        reopened, or never started. A file that played to its end is not lost."""
        return self.health not in (Health.OK, Health.ENDED)


@dataclass
class RunSummary:
    """What `vitdeploy run` (``run_rig``) did. ``latency_ms`` maps each of ``LATENCIES`` to one
    sample per completed set (ms; the latest ``MAX_SAMPLES`` sets); ``done_times`` are the sets'
    completion times (monotonic s)."""

    cameras: list[CameraSummary]
    sets_out: int
    dropped: dict[str, int]  # queue in front of a stage -> frame sets dropped there (drop-oldest)
    empty_ticks: int
    duration_s: float
    latency_ms: dict[str, np.ndarray]
    skew_ms: np.ndarray
    done_times: np.ndarray
    budget_ms: float
    deadline_misses: int
    stopped_by: str  # "max-frames" | "duration" | "stop" | "sources finished" | "error"
    jsonl: Path | None = None
    videos: list[Path] = field(default_factory=list)
    backend: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)  # checks the user overrode (--allow-rejected)
    sink_dropped: dict[str, int] = field(default_factory=dict)  # sink -> sets it dropped, being behind (live)
    mcap: Path | None = None  # the results MCAP (``[outputs] mcap``)
    zero_copy_sets: int = 0  # sets the cameras decoded straight into the model's batch (no copy)

    @property
    def sets_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def frames_skipped(self) -> int:
        return sum(c.skipped for c in self.cameras)

    @property
    def lost_cameras(self) -> list[CameraSummary]:
        """Cameras not delivering at the end (see ``CameraSummary.lost``)."""
        return [c for c in self.cameras if c.lost]

    def percentiles(self, name: str, qs: tuple[float, ...] = (50, 95, 99)) -> dict[float, float]:
        return percentiles(self.latency_ms.get(name, np.zeros(0)), qs)

    def throughput(self, *, skip: int = 0) -> float:
        """Frame sets per second between the completion of set ``skip`` and the last one (warm-up
        excluded); NaN with fewer than two sets after ``skip``."""
        t = self.done_times[skip:]
        if len(t) < 2 or t[-1] <= t[0]:
            return float("nan")
        return (len(t) - 1) / float(t[-1] - t[0])


class Stats:
    """Collects per-set results from the sink stage; thread-safe; ``snapshot`` feeds the live view."""

    def __init__(self, sources: list[Source], *, budget_ms: float, window: int = 100):
        self.sources = sources
        self.budget_ms = budget_ms
        self.window = window
        self._lock = threading.Lock()
        self._latency = {k: collections.deque(maxlen=MAX_SAMPLES) for k in LATENCIES}
        self._skew: collections.deque[float] = collections.deque(maxlen=MAX_SAMPLES)
        self._done: collections.deque[float] = collections.deque(maxlen=MAX_SAMPLES)
        self._sets = 0
        self._present = {s.camera: 0 for s in sources}
        self._missing = {s.camera: 0 for s in sources}
        self._misses = 0
        self.started = time.monotonic()

    @property
    def sets_out(self) -> int:
        with self._lock:
            return self._sets

    def record(self, fs: FrameSet) -> None:
        lat = set_latencies_ms(fs)
        with self._lock:
            for k in LATENCIES:
                self._latency[k].append(lat.get(k, float("nan")))
            self._skew.append(fs.skew_ms)
            self._done.append(fs.stamps.get("sink_end", time.monotonic()))
            self._sets += 1
            for slot in fs.slots:
                (self._missing if slot.missing else self._present)[slot.camera] += 1
            if lat.get("end_to_end", 0.0) > self.budget_ms:
                self._misses += 1

    def snapshot(self) -> dict:
        """Recent figures for a live view: fps and latency percentiles over the last ``window`` sets."""
        with self._lock:
            done = _latest(self._done, self.window)
            e2e = [v for v in _latest(self._latency["end_to_end"], self.window) if v == v]
            fps = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else 0.0
            return {"sets": self._sets, "fps": fps, "e2e": percentiles(e2e), "misses": self._misses,
                    "missing": dict(self._missing), "present": dict(self._present)}

    def summary(self, *, dropped: dict[str, int], empty_ticks: int, stopped_by: str, duration_s: float,
                skipped: dict[str, int] | None = None, jsonl: Path | None = None, videos: list[Path] | None = None,
                backend: dict[str, str] | None = None, overrides: list[str] | None = None,
                sink_dropped: dict[str, int] | None = None, mcap: Path | None = None,
                zero_copy_sets: int = 0) -> RunSummary:
        with self._lock:
            cams = []
            for s in self.sources:
                st = s.status()
                cams.append(CameraSummary(name=s.camera, source=s.describe(), frames_in=st.frames,
                                          frames_out=self._present[s.camera], missing=self._missing[s.camera],
                                          corrupt=st.corrupt, reconnects=st.reconnects, health=st.health,
                                          last_error=st.last_error, skipped=(skipped or {}).get(s.camera, 0)))
            return RunSummary(
                cameras=cams, sets_out=self._sets, dropped=dict(dropped), empty_ticks=empty_ticks,
                duration_s=duration_s,
                latency_ms={k: np.asarray(v, np.float64) for k, v in self._latency.items()},
                skew_ms=np.asarray(self._skew, np.float64), done_times=np.asarray(self._done, np.float64),
                budget_ms=self.budget_ms, deadline_misses=self._misses, stopped_by=stopped_by,
                jsonl=jsonl, videos=list(videos or []), backend=dict(backend or {}),
                overrides=list(overrides or []), sink_dropped=dict(sink_dropped or {}), mcap=mcap,
                zero_copy_sets=zero_copy_sets)


def _latest(samples: collections.deque[float], n: int) -> list[float]:
    """The last ``n`` of ``samples``, oldest first."""
    return list(itertools.islice(reversed(samples), n))[::-1]
