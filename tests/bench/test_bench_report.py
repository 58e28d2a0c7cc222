"""Bench reports: the JSON schema, atomic writing, --compare ratios, Markdown and the plot."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from vitdeploy.bench import (
    BenchReport,
    ConfigResult,
    Configuration,
    LatencyStats,
    compare_reports,
    load_report,
)
from vitdeploy.bench.machine import MemoryUse
from vitdeploy.bench.plot import write_plot
from vitdeploy.bench.report import SCHEMA, DeadlineResult, to_markdown
from vitdeploy.bench.stats import Jitter
from vitdeploy.bundle import Precision
from vitdeploy.errors import DataError
from vitdeploy.runtime.machine import describe_machine

STATS_KEYS = {"samples", "min_ms", "mean_ms", "median_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "std_ms"}


def result(backend="onnxruntime", precision="fp32", cameras=1, samples=(1.0, 2.0, 3.0), sets_per_s=100.0, **kw):
    s = np.asarray(samples, np.float64)
    return ConfigResult(config=Configuration(backend, Precision(precision), cameras),
                        latency=LatencyStats.from_samples(s), sets_per_s=sets_per_s, samples_ms=s,
                        memory=MemoryUse("rss", 12.5), backend_info={"backend": backend}, **kw)


def report(*results) -> BenchReport:
    return BenchReport(bundle={"path": "b", "model": "vit-test-detr", "image_size": [64, 96]},
                       machine={"cpu": "Test CPU", "cores": 2, "gpu": None, "libraries": {"onnxruntime": "1.0"}},
                       settings={"warmup": 1, "iterations": 3, "duration_s": None, "fps": None, "budget_ms": None,
                                 "mode": "throughput"},
                       results=list(results), created_at="2025-01-01T00:00:00+00:00")


def deadline_result() -> DeadlineResult:
    e2e = LatencyStats.from_samples([10.0, 20.0, 250.0])
    return DeadlineResult(fps=10, budget_ms=100, duration_s=1.0, sets_expected=10, sets_out=3, late=1, dropped=2,
                          missing_frames=1, end_to_end=e2e, infer=LatencyStats.from_samples([5.0, 6.0, 7.0]),
                          jitter=Jitter.from_completion_times([0.0, 0.1, 0.3]), skew=LatencyStats.from_samples([0, 1, 2]),
                          stopped_by="max-frames")


def test_json_keys_and_types(tmp_path):
    gpu_timed = result(cameras=6, transfer={"h2d": LatencyStats.from_samples([0.5]),
                                            "compute": LatencyStats.from_samples([1.5])})
    r = report(gpu_timed, result("torch", deadline=deadline_result()),
               ConfigResult.skipped(Configuration("onnxruntime", Precision.INT8, 1), "no int8 ONNX"))
    raw = json.loads(r.write_json(tmp_path / "bench.json").read_text())
    assert raw["schema"] == SCHEMA and isinstance(raw["created_at"], str)
    assert {"bundle", "machine", "settings", "results"} <= set(raw)
    ok, dl, skipped = raw["results"]
    assert (ok["backend"], ok["precision"], ok["cameras"], ok["status"], ok["reason"]) == ("onnxruntime", "fp32", 6, "ok", None)
    assert set(ok["latency_ms"]) == STATS_KEYS and all(isinstance(v, (int, float)) for v in ok["latency_ms"].values())
    assert ok["throughput"] == {"sets_per_s": 100.0, "frames_per_s": 600.0}
    assert set(ok["transfer_ms"]) == {"h2d", "compute"} and ok["transfer_ms"]["h2d"]["median_ms"] == 0.5
    assert ok["memory"] == {"kind": "rss", "peak_delta_mib": 12.5}
    assert ok["samples_ms"] == [1.0, 2.0, 3.0] and ok["deadline"] is None
    d = dl["deadline"]
    assert (d["late"], d["dropped"], d["missed"], d["sets_out"]) == (1, 2, 3, 3)
    assert d["miss_rate"] == pytest.approx(3 / 5)  # missed / (completed + dropped)
    assert set(d["end_to_end_ms"]) == STATS_KEYS and {"std_ms", "p99_minus_p50_ms"} <= set(d["jitter_ms"])
    assert skipped["status"] == "skipped" and skipped["reason"] == "no int8 ONNX" and skipped["latency_ms"] is None


def test_json_round_trips(tmp_path):
    r = report(result(samples=(1.0, 5.0)), result("torch", deadline=deadline_result()))
    back = load_report(r.write_json(tmp_path / "r.json"))
    assert back.results[0].latency == r.results[0].latency
    assert back.results[1].deadline.missed == 3 and back.results[1].config.key == ("torch", "fp32", 1)
    assert back.to_json() == r.to_json()


def test_nan_is_written_as_null_not_invalid_json(tmp_path):
    r = report(result(samples=(), sets_per_s=float("nan")))
    text = r.write_json(tmp_path / "r.json").read_text()
    assert "NaN" not in text
    assert json.loads(text)["results"][0]["latency_ms"]["p99_ms"] is None


def test_json_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "bench.json"
    path.write_text("previous report")

    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report(result()).write_json(path)
    assert path.read_text() == "previous report"  # the old file is untouched ...
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # ... and no half-written temp file is left


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    ("{not json", "cannot read bench report"),
    ('{"schema": "something/1"}', "not a vitdeploy bench report"),
    ('{"schema": "vitdeploy.bench/1", "results": []}', "malformed bench report"),
])
def test_load_report_errors(tmp_path, content, message):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_report(path)


def test_compare_ratios_on_two_hand_made_reports(tmp_path):
    a = report(result(samples=(10.0, 20.0), sets_per_s=100.0), result(cameras=6, samples=(40.0,), sets_per_s=25.0),
               result("torch", samples=(30.0,)))
    b = report(result(samples=(5.0, 10.0), sets_per_s=200.0), result(cameras=6, samples=(60.0,), sets_per_s=20.0),
               ConfigResult.skipped(Configuration("torch", Precision.FP32, 1), "no model"),
               result("onnxruntime", "fp16", samples=(3.0,)))
    c = compare_reports(load_report(a.write_json(tmp_path / "a.json")), load_report(b.write_json(tmp_path / "b.json")))
    ratios = {r.config.key: r for r in c.ratios}
    one, six = ratios[("onnxruntime", "fp32", 1)], ratios[("onnxruntime", "fp32", 6)]
    # medians 15 -> 7.5 ms, p99 19.9 -> 9.95 ms (np.percentile of two samples), throughput 100 -> 200 sets/s
    assert one.median == pytest.approx(0.5) and one.p99 == pytest.approx(0.5) and one.throughput == pytest.approx(2.0)
    assert six.median == pytest.approx(1.5) and six.throughput == pytest.approx(0.8)
    assert [x.key for x in c.only_a] == [("torch", "fp32", 1)]  # skipped in B: not comparable
    assert [x.key for x in c.only_b] == [("onnxruntime", "fp16", 1)]


def test_markdown_lists_every_configuration_and_the_machine():
    md = to_markdown(report(result(samples=(1.0, 2.0, 3.0)), result("torch", deadline=deadline_result()),
                            ConfigResult.skipped(Configuration("tensorrt", Precision.FP16, 6), "TensorRT | missing")))
    lines = md.splitlines()
    assert "Test CPU, 2 cores, no GPU" in md
    header = next(line for line in lines if line.startswith("| backend"))
    assert "p50 ms" in header and "p99 ms" in header and "missed" in header
    assert "| onnxruntime | fp32 | 1 | 2.0 |" in md
    assert any(line.startswith("| torch | fp32 | 1 |") and "| 3/5 |" in line for line in lines)
    assert "skipped: TensorRT \\| missing" in md  # a pipe in a reason must not break the table


def test_plot_is_a_png_and_needs_samples(tmp_path):
    path = write_plot(report(result(samples=(1.0, 2.0, 30.0)), result("torch", samples=(5.0, 6.0))), tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DataError, match="every configuration was skipped"):
        write_plot(report(ConfigResult.skipped(Configuration("torch", Precision.FP16, 1), "cpu")), tmp_path / "q.png")


def test_machine_description_names_cpu_cores_and_versions():
    m = describe_machine()
    assert m["cpu"] and m["cores"] >= 1 and "numpy" in m["libraries"]
    json.dumps(m)  # JSON-ready as it is
