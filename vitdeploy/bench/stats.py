"""Latency statistics of a benchmark: the figures a latency table shows, from raw samples.

Percentiles are numpy's default (linear interpolation between the two nearest samples), the same
definition ``vitdeploy.runtime.stats.percentiles`` uses for `vitdeploy run`, so a p99 means the
same thing in both reports. Every figure is milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from vitdeploy.runtime.stats import percentiles

#: The percentiles a latency row shows.
QUANTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples, milliseconds; NaN everywhere when there are no samples.
    ``std_ms`` is the population standard deviation (numpy's default, ddof=0)."""

    samples: int
    min_ms: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float

    @classmethod
    def from_samples(cls, samples_ms: np.ndarray | list[float]) -> LatencyStats:
        """Statistics of ``samples_ms`` (ms); NaN samples (sets that never got that far) are left out."""
        arr = np.asarray(samples_ms, dtype=np.float64).ravel()
        arr = arr[~np.isnan(arr)]
        if arr.size == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan, nan, nan, nan)
        p = percentiles(arr, QUANTILES)
        return cls(samples=int(arr.size), min_ms=float(arr.min()), mean_ms=float(arr.mean()), median_ms=p[50],
                   p90_ms=p[90], p95_ms=p[95], p99_ms=p[99], max_ms=float(arr.max()), std_ms=float(arr.std()))

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: NaN becomes None (JSON has no NaN)."""
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict) -> LatencyStats:
        return cls(**{k: (float("nan") if raw.get(k) is None else raw[k]) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Jitter:
    """How regular completions are: the intervals between consecutive completed frame sets (ms),
    their standard deviation, and the spread of the tail (p99 - p50). A rig at F fps that never
    stutters has intervals of 1000/F ms and both figures near 0."""

    intervals: int
    mean_interval_ms: float
    std_ms: float
    p99_minus_p50_ms: float

    @classmethod
    def from_completion_times(cls, done_s: np.ndarray | list[float]) -> Jitter:
        """``done_s``: completion times in seconds (monotonic clock), in order."""
        t = np.asarray(done_s, dtype=np.float64).ravel()
        if t.size < 2:
            nan = float("nan")
            return cls(0, nan, nan, nan)
        intervals = np.diff(t) * 1e3
        p = percentiles(intervals, (50, 99))
        return cls(intervals=int(intervals.size), mean_interval_ms=float(intervals.mean()),
                   std_ms=float(intervals.std()), p99_minus_p50_ms=p[99] - p[50])

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict) -> Jitter:
        return cls(**{k: (float("nan") if raw.get(k) is None else raw[k]) for k in cls.__dataclass_fields__})


def _finite_or_none(value: float | int) -> float | int | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
