"""A graph `calibrate --min-agreement` rejected is used by no command unless the user says
--allow-rejected, and then it is on the record (run summary, bench JSON, eval report, engine)."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from vitdeploy.bundle import Bundle, Precision, Status, Variant, sha256_file
from vitdeploy.cli.app import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def rejected(exported, tmp_path):
    """vit-test-detr with an INT8 variant that calibration recorded as rejected."""
    path = tmp_path / "b"
    shutil.copytree(exported("vit-test-detr", max_cameras=3).path, path)
    shutil.copyfile(path / "model.onnx", path / "model.int8.onnx")
    b = Bundle.open(path)
    b.manifest.graph().set_variant(Variant(
        precision=Precision.INT8, file="model.int8.onnx", sha256=sha256_file(path / "model.int8.onnx"),
        status=Status.REJECTED, details={"agreement": {"metric": "map50_agreement", "value": 0.71, "min": 0.9}}))
    b.save()
    return path


def test_run_refuses_a_rejected_graph_unless_allowed(rejected, tmp_path):
    args = ["run", rejected, "--synthetic-cameras", "1", "--synthetic-size", "64x96", "--fps", "20",
            "--max-frames", "2", "--precision", "int8", "--no-live"]
    r = invoke(*args, "--out", tmp_path / "a")
    assert r.exit_code == 1, r.output  # before: it ran without a word
    assert "marked rejected" in r.output and "0.710" in r.output and "--allow-rejected" in r.output
    assert not (tmp_path / "a" / "frames.jsonl").exists()
    r = invoke(*args, "--out", tmp_path / "b", "--allow-rejected")
    assert r.exit_code == 0, r.output
    assert "model.int8.onnx: rejected" in r.output and "used with --allow-rejected" in r.output


def test_bench_json_to_stdout_and_the_gate(rejected):
    r = invoke("bench", rejected, "--backend", "onnxruntime", "--precision", "int8", "--iterations", "1",
               "--warmup", "0", "--cameras", "1")
    assert r.exit_code == 1 and "marked rejected" in r.output, r.output
    r = invoke("bench", rejected, "--backend", "onnxruntime", "--precision", "int8", "--iterations", "1",
               "--warmup", "0", "--cameras", "1", "--allow-rejected", "--json", "-")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)  # stdout holds only the JSON (before: a file named "-")
    assert report["settings"]["allow_rejected"] is True
    [row] = report["results"]
    assert row["status"] == "ok" and "rejected" in row["backend_info"]["allow_rejected"]
    assert "latency" in r.stderr and not (rejected.parent / "-").exists()


def test_bench_by_default_leaves_a_rejected_graph_out(rejected):
    r = invoke("bench", rejected, "--backend", "onnxruntime", "--iterations", "1", "--warmup", "0", "--cameras", "1",
               "--json", "-")
    assert r.exit_code == 0, r.output
    assert [x["precision"] for x in json.loads(r.stdout)["results"]] == ["fp32"]


def test_eval_refuses_a_rejected_graph_unless_allowed(rejected, tmp_path):
    r = invoke("eval", rejected, "--data", "synthetic:frames=2", "--precision", "fp32,int8")
    assert r.exit_code == 1 and "marked rejected" in r.output, r.output
    r = invoke("eval", rejected, "--data", "synthetic:frames=2", "--precision", "fp32,int8", "--allow-rejected",
               "--json", tmp_path / "e.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "e.json").read_text())["bundle"]["allow_rejected"] == [
        "model.int8.onnx: rejected (map50_agreement 0.710 with FP32, below the 0.9 asked for), used with "
        "--allow-rejected"]


def test_print_trtexec_refuses_a_rejected_graph_unless_allowed(rejected):
    r = invoke("build", rejected, "--int8", "--print-trtexec", "--trt-version", "10")
    assert r.exit_code == 1 and "marked rejected" in r.output, r.output  # before: printed the line
    r = invoke("build", rejected, "--int8", "--print-trtexec", "--trt-version", "10", "--allow-rejected")
    assert r.exit_code == 0 and "--onnx=" in r.output and "model.int8.onnx" in r.output, r.output


def test_an_engine_built_from_a_rejected_graph_is_recorded_and_gated(rejected, monkeypatch):
    from trt_fakes import FakePycuda, FakeTensorRT, install

    from vitdeploy.errors import BackendError
    from vitdeploy.runtime.backends import tensorrt as trt_backend
    from vitdeploy.tensorrt.build import BuildOptions, build_engines
    from vitdeploy.tensorrt.errors import BuildError

    cuda = FakePycuda()
    install(monkeypatch, FakeTensorRT(cuda, "10.3.0.30"), cuda)
    with pytest.raises(BuildError, match="marked rejected"):
        build_engines(rejected, BuildOptions(precision=Precision.INT8, max_cameras=2))
    [r] = build_engines(rejected, BuildOptions(precision=Precision.INT8, max_cameras=2, allow_rejected=True))
    assert r.engine.options["allow_rejected"] == "rejected"
    with pytest.raises(BackendError, match="marked rejected"):
        trt_backend.from_bundle(Bundle.open(rejected), precision="int8")
    with trt_backend.from_bundle(Bundle.open(rejected), precision="int8", allow_rejected=True) as backend:
        assert backend.dim_ranges == {"cameras": (1, 2)}
