"""Benchmark statistics and the measuring loop: figures checked against numpy and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitdeploy.bench import BenchSettings, Deadline, Jitter, LatencyStats, measure_backend
from vitdeploy.bundle import TensorSpec
from vitdeploy.errors import DataError
from vitdeploy.runtime.backends.base import Backend


def test_latency_stats_of_known_samples():
    rng = np.random.default_rng(0)
    samples = rng.permutation(np.arange(1.0, 101.0))  # 1..100 ms in random order
    s = LatencyStats.from_samples(samples)
    # by hand: numpy's linear interpolation puts the q-th percentile at rank q/100 * (n - 1)
    assert (s.samples, s.min_ms, s.max_ms, s.mean_ms, s.median_ms) == (100, 1.0, 100.0, 50.5, 50.5)
    assert s.p90_ms == pytest.approx(90.1) and s.p95_ms == pytest.approx(95.05) and s.p99_ms == pytest.approx(99.01)
    for q, got in ((50, s.median_ms), (90, s.p90_ms), (95, s.p95_ms), (99, s.p99_ms)):
        assert got == pytest.approx(np.percentile(samples, q))
    assert s.std_ms == pytest.approx(np.std(samples))


def test_latency_stats_skip_nan_and_handle_no_samples():
    s = LatencyStats.from_samples([4.0, float("nan"), 2.0])
    assert s.samples == 2 and s.mean_ms == 3.0 and s.max_ms == 4.0
    empty = LatencyStats.from_samples([])
    assert empty.samples == 0 and math.isnan(empty.p99_ms)
    assert empty.to_dict()["p99_ms"] is None  # JSON has no NaN
    assert LatencyStats.from_dict(s.to_dict()) == s


def test_jitter_of_completion_times():
    j = Jitter.from_completion_times([0.0, 0.1, 0.2, 0.35])  # intervals 100, 100, 150 ms
    assert j.intervals == 3 and j.mean_interval_ms == pytest.approx(350 / 3)
    assert j.std_ms == pytest.approx(np.std([100.0, 100.0, 150.0]))
    # p99 of [100, 100, 150] sits at rank 0.99 * 2 = 1.98: 100 + 0.98 * 50 = 149; p50 = 100
    assert j.p99_minus_p50_ms == pytest.approx(49.0)
    assert Jitter.from_completion_times([1.0]).intervals == 0


class CountingBackend(Backend):
    """Counts calls and reports a fixed transfer/compute split, as a GPU backend would."""

    name = "counting"

    def __init__(self):
        super().__init__(inputs=[TensorSpec("x", "float32", ["cameras", 2])], outputs=[],
                         dim_ranges={"cameras": (1, 4)})
        self.calls = 0

    def _infer(self, feed):
        self.calls += 1
        self.last_timing.h2d_ms, self.last_timing.compute_ms, self.last_timing.d2h_ms = 0.1, 1.0, 0.2
        return {}


def test_measure_backend_excludes_warmup_and_keeps_the_phase_split():
    backend = CountingBackend()
    feeds = [{"x": np.zeros((2, 2), np.float32)}, {"x": np.ones((2, 2), np.float32)}]
    m = measure_backend(backend, feeds, warmup=3, iterations=5, duration_s=None)
    assert backend.calls == 8 and len(m.latency_ms) == 5
    assert set(m.phases_ms) == {"h2d", "compute", "d2h"} and list(m.phases_ms["compute"]) == [1.0] * 5
    assert m.sets_per_s > 0


def test_measure_backend_by_duration_runs_at_least_that_long():
    m = measure_backend(CountingBackend(), [{"x": np.zeros((1, 2), np.float32)}], warmup=0, iterations=None,
                        duration_s=0.05)
    assert len(m.latency_ms) >= 1 and m.elapsed_s >= 0.05


@pytest.mark.parametrize(("make", "message"), [
    (lambda: BenchSettings(iterations=5, duration_s=1.0), "not both"),
    (lambda: BenchSettings(iterations=0), "at least 1"),
    (lambda: BenchSettings(warmup=-1), "warm-up"),
    (lambda: Deadline(0.0, 100.0), "positive number of frames per second"),
    (lambda: Deadline(10.0, -1.0), "positive number of ms"),
])
def test_bad_settings_say_what_would_be_right(make, message):
    with pytest.raises(DataError, match=message):
        make()


def test_default_limits_depend_on_the_mode():
    assert BenchSettings().limits == (100, None)
    assert BenchSettings(deadline=Deadline(10, 100)).limits == (None, 10.0)
