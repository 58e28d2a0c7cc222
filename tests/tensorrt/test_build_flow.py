"""The whole `vitdeploy build` flow on stand-ins for TensorRT and pycuda (tests/trt_fakes.py): the
fake engine runs the bundle's ONNX with ONNX Runtime, so the golden check sees real numbers."""

import hashlib

import pytest
from trt_fakes import FakePycuda as FakeCuda
from trt_fakes import FakeTensorRT, install

from vitdeploy.bundle import Bundle, Precision, Status, sha256_file
from vitdeploy.errors import BackendError
from vitdeploy.runtime.backends import tensorrt as trt_backend
from vitdeploy.tensorrt.build import BuildOptions, build_engines
from vitdeploy.tensorrt.errors import BuildError
from vitdeploy.tensorrt.golden import GOLDEN_FILE
from vitdeploy.tensorrt.trtexec import BuilderSettings

BUNDLE_CAMERAS = 3  # the shared ``bundle`` fixture's camera range: 1..3


def fake(monkeypatch, version="10.3.0.30", corrupt=0.0):
    cuda = FakeCuda()
    trt = FakeTensorRT(cuda, version, corrupt=corrupt)
    install(monkeypatch, trt, cuda)
    return trt


def test_build_writes_the_plan_and_records_provenance_and_golden(bundle, monkeypatch, tmp_path):
    trt = fake(monkeypatch)
    cache = tmp_path / "t.cache"
    [r] = build_engines(bundle.path, BuildOptions(max_cameras=2, settings=BuilderSettings(timing_cache=cache)))
    e = r.engine
    assert r.passed and e.status is Status.GOOD
    assert e.file == "model.fp32.orin-sm87.plan" and r.plan_path == bundle.path / e.file
    assert (e.tensorrt_version, e.cuda_version, e.gpu_name, e.compute_capability) == ("10.3.0.30", "12.6", "Orin", "8.7")
    assert e.profile == {"cameras": [1, 2, 2]} and e.precision is Precision.FP32
    assert e.plan_sha256 == sha256_file(r.plan_path) and e.onnx_file == "model.onnx"
    assert e.golden["passed"] and set(e.golden["cases"]) == {"cameras=1", "cameras=2"}
    assert e.build_seconds >= 0 and e.built_at and e.options["workspace_gb"] == 4.0
    assert ("create_network", 1 << 1) in trt.calls and ("clear_flag", "TF32") in trt.calls
    assert cache.read_bytes() == b"CACHE"
    saved = Bundle.open(bundle.path)
    assert saved.manifest.engines == [e]
    assert e.onnx_sha256 == saved.manifest.graph().variant("fp32").sha256
    assert (bundle.path / GOLDEN_FILE).is_file()
    assert not [p.name for p in bundle.path.iterdir() if p.name.startswith(".")]  # no temporaries
    # the head's task-level check ran on the golden pool; random weights detect nothing, and it says so
    task = e.golden["task"]["cameras=2"]
    assert task["metric"] == "detection_map" and task["value"] is None and "detects nothing" in task["reason"]
    assert "12 frames" in e.golden["reference"]

    # the backend opens what was built, for this machine
    with trt_backend.from_bundle(saved) as backend:
        assert backend.dim_ranges == {"cameras": (1, 2)}


def test_tensorrt_11_builds_without_the_deprecated_flag(bundle, monkeypatch):
    trt = fake(monkeypatch, "11.0.0.114")
    [r] = build_engines(bundle.path, BuildOptions())
    assert r.passed and ("create_network", 0) in trt.calls


def test_an_engine_beyond_tolerance_is_kept_marked_failed_and_refused(bundle, monkeypatch, invoke):
    fake(monkeypatch, corrupt=0.5)
    r = invoke("build", str(bundle.path))
    assert r.exit_code == 1
    assert "golden vs fp32 onnxruntime: FAIL" in r.output and "marked failed" in r.output
    b = Bundle.open(bundle.path)
    [e] = b.manifest.engines
    assert e.status is Status.FAILED and not e.golden["passed"] and (bundle.path / e.file).is_file()
    with pytest.raises(BackendError, match="failed its golden check"):
        trt_backend.from_bundle(b)


def test_cli_build_reports_and_a_rebuild_replaces_the_record(bundle, monkeypatch, invoke):
    fake(monkeypatch)
    r = invoke("build", str(bundle.path), "--max-cameras", "2", "--opt-cameras", "1")
    assert r.exit_code == 0, r.output
    assert "model.fp32.orin-sm87.plan" in r.output and "cameras 1..2 (opt 1)" in r.output
    assert "golden vs fp32 onnxruntime: pass" in r.output
    r = invoke("build", str(bundle.path))
    assert r.exit_code == 0, r.output
    [e] = Bundle.open(bundle.path).manifest.engines
    assert e.profile == {"cameras": [1, 3, 3]}


def test_an_onnx_changed_behind_the_manifest_is_refused(bundle, monkeypatch):
    fake(monkeypatch)
    onnx = bundle.path / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    before = hashlib.sha256((bundle.path / "manifest.json").read_bytes()).hexdigest()
    with pytest.raises(BuildError, match="changed since the manifest recorded it"):
        build_engines(bundle.path, BuildOptions())
    assert hashlib.sha256((bundle.path / "manifest.json").read_bytes()).hexdigest() == before


def test_a_rejected_variant_is_not_built(bundle, monkeypatch):
    fake(monkeypatch)
    b = Bundle.open(bundle.path)
    b.manifest.graph().variant("fp32").status = Status.REJECTED
    b.save()
    with pytest.raises(BuildError, match=r"marked rejected.*vitdeploy calibrate"):
        build_engines(bundle.path, BuildOptions())
    assert not list(bundle.path.glob("*.plan"))


def test_fp16_is_calibrated_first_then_built(bundle, monkeypatch, invoke):
    """The real calibration package makes the FP16 ONNX; the engine is then built and checked."""
    fake(monkeypatch)
    r = invoke("build", str(bundle.path), "--fp16", "--calib-data", "synthetic")
    assert r.exit_code == 0, r.output
    b = Bundle.open(bundle.path)
    variant = b.manifest.graph().variant("fp16")
    [e] = b.manifest.engines
    assert e.file == "model.fp16.orin-sm87.plan" and e.onnx_file == variant.file
    assert e.onnx_sha256 == variant.sha256 and e.status is Status.GOOD
