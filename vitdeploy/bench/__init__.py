"""`vitdeploy bench`: latency, throughput and deadline misses of a bundle over backends, precisions
and camera counts.

:func:`bench_bundle` measures a plan of :class:`Configuration` rows into a :class:`BenchReport`
(JSON, Markdown, PNG); :func:`compare_reports` puts two reports side by side.
"""

from vitdeploy.bench.compare import Comparison, Ratio, compare_reports
from vitdeploy.bench.measure import BenchSettings, Deadline, bench_bundle, measure_backend
from vitdeploy.bench.report import BenchReport, ConfigResult, DeadlineResult, load_report, to_markdown
from vitdeploy.bench.stats import Jitter, LatencyStats
from vitdeploy.runtime.configs import Configuration, bundle_precisions, plan

__all__ = ["BenchReport", "BenchSettings", "Comparison", "ConfigResult", "Configuration", "Deadline",
           "DeadlineResult", "Jitter", "LatencyStats", "Ratio", "bench_bundle", "bundle_precisions",
           "compare_reports", "load_report", "measure_backend", "plan", "to_markdown"]
