"""`vitdeploy bench` as a user runs it, on the exported vit-test-detr (a few iterations each)."""

from __future__ import annotations

import json

import pytest


def test_help_shows_examples(invoke):
    r = invoke("bench", "--help")
    assert r.exit_code == 0 and "Example" in r.output and "--budget-ms" in r.output


def test_bench_one_and_two_cameras_writes_json_markdown_and_plot(invoke, bundle, tmp_path):
    out = tmp_path / "bench.json"
    r = invoke("bench", bundle.path, "--backend", "onnxruntime,torch", "--cameras", "1,2", "--warmup", "1",
               "--iterations", "3", "--json", out, "--markdown", tmp_path / "bench.md", "--plot", tmp_path / "bench.png")
    assert r.exit_code == 0, r.output
    assert "p99" in r.output and "frames/s" in r.output and "machine:" in r.output
    raw = json.loads(out.read_text())
    runs = {(x["backend"], x["cameras"]): x for x in raw["results"]}
    assert set(runs) == {("onnxruntime", 1), ("onnxruntime", 2), ("torch", 1), ("torch", 2)}
    for x in runs.values():
        assert x["status"] == "ok", x["reason"]
        assert x["latency_ms"]["samples"] == 3 and len(x["samples_ms"]) == 3  # the warm-up is not measured
        assert x["latency_ms"]["min_ms"] <= x["latency_ms"]["median_ms"] <= x["latency_ms"]["max_ms"]
        assert x["throughput"]["frames_per_s"] == pytest.approx(x["throughput"]["sets_per_s"] * x["cameras"])
        assert x["memory"]["kind"] in ("rss", "rss-end")
    assert raw["machine"]["cores"] >= 1 and "onnxruntime" in raw["machine"]["libraries"]
    # back to back nothing else uses the CPU: onnxruntime's threads spin (as torch's do), on the fused graph
    assert runs[("onnxruntime", 1)]["backend_info"]["spinning"] == "true"
    assert runs[("onnxruntime", 1)]["backend_info"]["fusions"].startswith("attention ")
    assert "| onnxruntime | fp32 | 2 |" in (tmp_path / "bench.md").read_text()
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_a_configuration_that_cannot_run_is_skipped_with_its_reason(invoke, bundle, tmp_path):
    out = tmp_path / "bench.json"
    r = invoke("bench", bundle.path, "--backend", "onnxruntime,torch", "--precision", "fp32,int8", "--cameras", "1",
               "--warmup", "0", "--iterations", "2", "--json", out)
    # int8 was asked for and ran nowhere: the report is written, and the exit code says so
    assert r.exit_code == 1 and "asked for but nothing ran with: precision int8" in r.output, r.output
    rows = {(x["backend"], x["precision"]): x for x in json.loads(out.read_text())["results"]}
    assert rows[("onnxruntime", "fp32")]["status"] == "ok"
    assert rows[("onnxruntime", "int8")]["status"] == "skipped"
    assert "no int8 ONNX" in rows[("onnxruntime", "int8")]["reason"]
    assert "int8" in rows[("torch", "int8")]["reason"]
    assert "skipped onnxruntime int8 x1" in r.output


def test_nothing_that_can_run_is_exit_1(invoke, bundle):
    r = invoke("bench", bundle.path, "--backend", "onnxruntime", "--precision", "int8", "--iterations", "1")
    assert r.exit_code == 1
    assert "nothing could run" in r.output and "Traceback" not in r.output


def test_deadline_mode_counts_misses_jitter_and_skew(invoke, bundle, tmp_path):
    out = tmp_path / "deadline.json"
    r = invoke("bench", bundle.path, "--backend", "onnxruntime", "--cameras", "2", "--warmup", "1", "--fps", "20",
               "--budget-ms", "2000", "--iterations", "5", "--json", out)
    assert r.exit_code == 0, r.output
    assert "deadline: 20 fps per camera, budget 2000 ms" in r.output
    (x,) = json.loads(out.read_text())["results"]
    d = x["deadline"]
    assert d["sets_out"] == 5 and d["missed"] == d["late"] + d["dropped"]
    assert d["late"] == 0  # a 2 s budget for a 64x96 model: only a stalled machine misses it
    assert d["jitter_ms"]["intervals"] == 4 and d["skew_ms"]["samples"] == 5
    assert x["latency_ms"]["samples"] == 5  # end to end, one per completed set
    assert x["backend_info"]["spinning"] == "false"  # the runtime's own setting: the cores are shared


@pytest.mark.parametrize(("args", "message"), [
    (["--fps", "10"], "needs both --fps and --budget-ms"),
    (["--iterations", "5", "--duration", "1"], "not both"),
    (["--cameras", "two"], "not a positive integer"),
    (["--backend", "tensorflow"], "unknown backend 'tensorflow'"),
])
def test_bad_options_are_one_line_errors(invoke, bundle, args, message):
    r = invoke("bench", bundle.path, *args)
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output


def test_compare_prints_ratios(invoke, tmp_path):
    def write(name, median):
        doc = {"schema": "vitdeploy.bench/1", "bundle": {"model": "m"}, "machine": {"cpu": "c"}, "settings": {},
               "results": [{"backend": "onnxruntime", "precision": "fp32", "cameras": 6, "status": "ok",
                            "latency_ms": {"samples": 1, "min_ms": median, "mean_ms": median, "median_ms": median,
                                           "p90_ms": median, "p95_ms": median, "p99_ms": 2 * median,
                                           "max_ms": 2 * median, "std_ms": 0.0},
                            "throughput": {"sets_per_s": 1000 / median, "frames_per_s": 6000 / median}}]}
        path = tmp_path / name
        path.write_text(json.dumps(doc))
        return path

    r = invoke("bench", "--compare", write("a.json", 20.0), write("b.json", 5.0))
    assert r.exit_code == 0, r.output
    assert "0.250" in r.output and "4.000" in r.output  # p50 B/A, and sets/s B/A
    r = invoke("bench", "--compare", write("a.json", 20.0), tmp_path / "missing.json")
    assert r.exit_code == 1 and "does not exist" in r.output


def test_a_python_caller_gets_the_cli_defaults(bundle):
    """bench_bundle builds the torch model itself (as `vitdeploy bench` does) when not given one."""
    from vitdeploy.bench import BenchSettings, bench_bundle, plan

    report = bench_bundle(bundle, plan(bundle, backends=["torch"], cameras=[1]), BenchSettings(warmup=0, iterations=2))
    [result] = report.results
    assert result.ok, result.reason
    assert report.bundle["head"] == "detr"


def test_a_rig_bundle_is_benched_per_frame_set_with_its_geometry(invoke, rig3d_bundle, tmp_path):
    from vitdeploy.bench.measure import camera_frames, make_feeds
    from vitdeploy.runtime.backends import open_backend

    with open_backend("onnxruntime", rig3d_bundle) as backend:
        (feed,) = make_feeds(rig3d_bundle, backend, camera_frames(rig3d_bundle, 6, batches=1))
    assert {k: v.shape for k, v in feed.items()} == {"images": (6, 3, 64, 96), "intrinsics": (6, 3, 3),
                                                      "cam_to_ego": (6, 4, 4)}
    out = tmp_path / "bench.json"
    r = invoke("bench", rig3d_bundle.path, "--backend", "onnxruntime", "--cameras", "1,6", "--warmup", "1",
               "--iterations", "3", "--json", out)
    assert r.exit_code == 0, r.output
    runs = {x["cameras"]: x for x in json.loads(out.read_text())["results"]}
    assert runs[6]["status"] == "ok" and runs[6]["latency_ms"]["samples"] == 3  # latency of one whole frame set
    assert runs[1]["status"] == "ok"
