"""Two bench reports side by side: the ratio B / A for every configuration both measured.

Configurations are matched on (backend, precision, cameras). A latency ratio below 1 means B is
faster; a throughput ratio above 1 means B is faster. Configurations that only one report ran
(or that one of them skipped) are listed as unmatched rather than silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vitdeploy.bench.report import BenchReport, ConfigResult
from vitdeploy.runtime.configs import Configuration


@dataclass(frozen=True)
class Ratio:
    """One matched configuration: A's and B's figures (ms, sets/s) and B / A."""

    config: Configuration
    a_median_ms: float
    b_median_ms: float
    a_p99_ms: float
    b_p99_ms: float
    a_sets_per_s: float
    b_sets_per_s: float

    @property
    def median(self) -> float:
        return _ratio(self.b_median_ms, self.a_median_ms)

    @property
    def p99(self) -> float:
        return _ratio(self.b_p99_ms, self.a_p99_ms)

    @property
    def throughput(self) -> float:
        return _ratio(self.b_sets_per_s, self.a_sets_per_s)


@dataclass(frozen=True)
class Comparison:
    """``ratios`` for configurations both reports ran; ``only_a``/``only_b`` what ran in one only."""

    ratios: list[Ratio]
    only_a: list[Configuration]
    only_b: list[Configuration]


def compare_reports(a: BenchReport, b: BenchReport) -> Comparison:
    """Match ``a`` and ``b`` by (backend, precision, cameras) and compute B / A."""
    ran_a = {r.config.key: r for r in a.ran}
    ran_b = {r.config.key: r for r in b.ran}
    ratios = [_pair(ran_a[k], ran_b[k]) for k in ran_a if k in ran_b]
    return Comparison(ratios=ratios, only_a=[ran_a[k].config for k in ran_a if k not in ran_b],
                      only_b=[ran_b[k].config for k in ran_b if k not in ran_a])


def _pair(a: ConfigResult, b: ConfigResult) -> Ratio:
    nan = float("nan")
    return Ratio(config=a.config, a_median_ms=a.latency.median_ms, b_median_ms=b.latency.median_ms,
                 a_p99_ms=a.latency.p99_ms, b_p99_ms=b.latency.p99_ms,
                 a_sets_per_s=a.sets_per_s if a.sets_per_s is not None else nan,
                 b_sets_per_s=b.sets_per_s if b.sets_per_s is not None else nan)


def _ratio(num: float, den: float) -> float:
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0:
        return float("nan")
    return num / den
