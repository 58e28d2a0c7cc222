"""The tensorrt backend: refuses clearly without TensorRT/GPU or on a provenance mismatch, and on a
GPU runs any camera count of the profile (with and without CUDA graphs) like ONNX Runtime."""

import dataclasses
import hashlib
import json
import shutil
import sys

import numpy as np
import pytest
from trt_fakes import FakeCuda, FakeTensorRT, demo_logits, demo_plan, install

from vitdeploy.bundle import Bundle, Engine, Precision, Status, TensorSpec
from vitdeploy.errors import BackendError, MissingDependencyError
from vitdeploy.tensorrt import runner as trt_backend
from vitdeploy.tensorrt.compat import device_index, import_cuda
from vitdeploy.tensorrt.provenance import EngineMismatchError

INSTALL = 'pip install "vitdeploy[tensorrt]"'


@pytest.fixture
def bundle(exported, tmp_path):
    src = exported("vit-test-detr", max_cameras=3)
    shutil.copytree(src.path, tmp_path / "b")
    return Bundle.open(tmp_path / "b")


def _record(**changes) -> Engine:
    e = Engine(file="model.fp32.orin-sm87.plan", graph="model", precision=Precision.FP32,
               tensorrt_version="10.3.0.30", cuda_version="12.6", gpu_name="Orin", compute_capability="8.7",
               profile={"cameras": [1, 3, 3]}, onnx_sha256="a" * 64, plan_sha256="b" * 64, build_seconds=1.0,
               built_at="2025-01-01T00:00:00+00:00")
    return dataclasses.replace(e, **changes)


# ---- without TensorRT or a GPU ------------------------------------------------------------------
def test_from_bundle_without_tensorrt_names_the_install(no_tensorrt, bundle):
    with pytest.raises(MissingDependencyError) as info:
        trt_backend.from_bundle(bundle, precision="fp32")
    assert INSTALL in str(info.value)


def test_constructor_without_tensorrt_names_the_install(no_tensorrt, bundle):
    g = bundle.manifest.graph()
    with pytest.raises(MissingDependencyError, match=r"vitdeploy\[tensorrt\]"):
        trt_backend.TensorRTBackend(bundle.path / "model.fp32.x.plan", engine=_record(), inputs=g.inputs,
                                    outputs=g.outputs)


def test_without_pycuda_the_message_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(MissingDependencyError, match="pycuda"):
        import_cuda()


def test_device_names():
    assert device_index("cuda") == 0 and device_index("cuda:1") == 1 and device_index(2) == 2
    for bad in ("cpu", "cuda:x", "tensorrt"):
        with pytest.raises(BackendError, match="use cuda or cuda:N"):
            device_index(bad)


# ---- on a GPU with TensorRT ---------------------------------------------------------------------
@pytest.fixture
def gpu(tensorrt_gpu):
    return tensorrt_gpu


@pytest.fixture
def built(gpu, bundle):
    """The bundle with an FP32 engine for this GPU (cameras 1..3)."""
    from vitdeploy.tensorrt.build import BuildOptions, build_engines

    [result] = build_engines(bundle.path, BuildOptions(precision=Precision.FP32))
    assert result.passed, result.golden.summary()
    return Bundle.open(bundle.path)


def _golden(bundle: Bundle):
    from vitdeploy.tensorrt.golden import GOLDEN_FILE, load_golden

    return load_golden(bundle.file(GOLDEN_FILE))["model"]


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_runs_every_camera_count_of_the_profile_like_onnxruntime(built, cuda_graphs):
    golden = _golden(built)
    graph = built.manifest.graph()
    with trt_backend.from_bundle(built, precision="fp32", cuda_graphs=cuda_graphs) as backend:
        assert backend.dim_ranges == {"cameras": (1, 3)}
        for cameras in (1, 3, 2, 1):  # shapes change back and forth
            inputs, ref = golden.take(graph, cameras)
            out = backend.infer(inputs)
            for name, r in ref.items():
                np.testing.assert_allclose(out[name], r, rtol=1e-3, atol=1e-3 * np.abs(r).max())
            t = backend.last_timing
            assert t.total_ms > 0 and t.h2d_ms >= 0 and t.compute_ms > 0 and t.d2h_ms >= 0
        with pytest.raises(BackendError, match="cameras=4"):
            backend.infer({"images": np.zeros((4, 3, 64, 96), np.float32)})
        assert backend.describe()["cuda_graphs"] == ("on" if cuda_graphs else "off")


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_provenance_mismatch_is_refused_before_deserializing(built):
    raw = json.loads(built.file("manifest.json").read_text())
    raw["engines"][0]["tensorrt_version"] = "9.9.9.9"
    built.file("manifest.json").write_text(json.dumps(raw))
    with pytest.raises(EngineMismatchError) as info:
        trt_backend.from_bundle(Bundle.open(built.path))
    assert "9.9.9.9" in str(info.value) and "vitdeploy build" in str(info.value)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_a_changed_plan_file_is_refused(built):
    engine = built.manifest.engines[0]
    path = built.file(engine.file)
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(EngineMismatchError, match="not the plan the manifest recorded"):
        trt_backend.from_bundle(built)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_a_failed_engine_is_refused_unless_asked_for(built):
    built.manifest.engines[0].status = Status.FAILED
    built.save()
    with pytest.raises(BackendError, match="failed its golden check"):
        trt_backend.from_bundle(Bundle.open(built.path))
    with trt_backend.from_bundle(Bundle.open(built.path), allow_failed=True) as backend:
        assert backend.record.status is Status.FAILED


# ---- the backend's own logic, on stand-ins for TensorRT and pycuda (tests/trt_fakes.py) ---------
SPECS_IN = [TensorSpec("images", "float32", ["cameras", 3, 4, 4])]
SPECS_OUT = [TensorSpec("logits", "float32", ["cameras", 5])]


@pytest.fixture
def fakes(monkeypatch):
    cuda = FakeCuda()
    trt = FakeTensorRT(cuda)
    install(monkeypatch, trt, cuda)
    return trt, cuda


@pytest.fixture
def plan(tmp_path):
    path = tmp_path / "model.fp32.orin-sm87.plan"
    path.write_bytes(demo_plan())
    return path, _record(plan_sha256=hashlib.sha256(demo_plan()).hexdigest(), profile={"cameras": [1, 3, 3]})


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_any_camera_count_in_the_profile_runs_through_fixed_buffers(fakes, plan, monkeypatch, cuda_graphs):
    trt, cuda = fakes
    captured = []

    class Graph:  # stands in for the driver-API graph: replays what was captured
        def __init__(self, work):
            self.work = work

        @classmethod
        def capture(cls, stream, work):
            captured.append(stream)
            return cls(work)

        def launch(self, stream):
            self.work()

        def close(self):
            pass

    monkeypatch.setattr(trt_backend, "CudaGraph", Graph)
    path, record = plan
    rng = np.random.default_rng(0)
    with trt_backend.TensorRTBackend(path, engine=record, inputs=SPECS_IN, outputs=SPECS_OUT,
                                     cuda_graphs=cuda_graphs) as backend:
        assert backend.dim_ranges == {"cameras": (1, 3)}
        assert trt.deserialized == [demo_plan()]
        addresses = set(cuda.memory)
        for n in (3, 1, 2, 1, 3):
            images = rng.standard_normal((n, 3, 4, 4)).astype(np.float32)
            out = backend.infer({"images": images})
            np.testing.assert_allclose(out["logits"], demo_logits(images), rtol=1e-5)
            assert set(cuda.memory) == addresses  # no allocation per call
            t = backend.last_timing
            assert t.total_ms >= t.h2d_ms + t.compute_ms + t.d2h_ms >= 0
        with pytest.raises(BackendError, match="cameras=4"):
            backend.infer({"images": np.zeros((4, 3, 4, 4), np.float32)})
        if cuda_graphs:
            assert len(captured) == 3  # one graph per camera count, captured once
        assert backend.describe()["gpu"] == "Orin (sm 8.7)"
    assert cuda.memory == {}  # close() freed the buffers


def test_provenance_is_checked_before_tensorrt_sees_the_plan(fakes, plan):
    trt, _cuda = fakes
    path, record = plan
    for wrong in (dataclasses.replace(record, tensorrt_version="10.0.1.6"),
                  dataclasses.replace(record, compute_capability="9.0", gpu_name="NVIDIA H100 80GB HBM3")):
        with pytest.raises(EngineMismatchError, match="rebuild it here with: vitdeploy build"):
            trt_backend.TensorRTBackend(path, engine=wrong, inputs=SPECS_IN, outputs=SPECS_OUT)
    path.write_bytes(demo_plan() + b" ")
    with pytest.raises(EngineMismatchError, match="not the plan the manifest recorded"):
        trt_backend.TensorRTBackend(path, engine=record, inputs=SPECS_IN, outputs=SPECS_OUT)
    assert trt.deserialized == []


def test_version_compatible_plans_may_run_their_lean_runtime(fakes, plan):
    trt, _cuda = fakes
    path, record = plan
    trt.__version__ = "10.7.0.23"
    with trt_backend.TensorRTBackend(path, engine=dataclasses.replace(record, version_compatible=True),
                                     inputs=SPECS_IN, outputs=SPECS_OUT) as backend:
        assert backend._runtime.engine_host_code_allowed is True


def test_manifest_and_plan_must_agree_on_tensors(fakes, plan):
    path, record = plan
    with pytest.raises(BackendError, match=r"has inputs \['images'\] and outputs \['logits'\].*rebuild"):
        trt_backend.TensorRTBackend(path, engine=record, inputs=[TensorSpec("pixels", "float32", ["cameras", 3])],
                                    outputs=SPECS_OUT)


def test_from_bundle_picks_this_gpus_engine(fakes, bundle, plan):
    path, record = plan
    g = bundle.manifest.graph()
    shutil.copy(path, bundle.file(record.file))
    other = dataclasses.replace(record, file="model.fp32.h100-sm90.plan", gpu_name="NVIDIA H100 80GB HBM3",
                                compute_capability="9.0")
    bundle.manifest.engines = [other]
    with pytest.raises(EngineMismatchError, match=r"sm 9.0 \(NVIDIA H100 80GB HBM3\), this machine has sm 8.7"):
        trt_backend.from_bundle(bundle)
    bundle.manifest.engines = [other, record]
    g.inputs, g.outputs = SPECS_IN, SPECS_OUT
    with trt_backend.from_bundle(bundle) as backend:
        assert backend.record.file == "model.fp32.orin-sm87.plan"
    with pytest.raises(BackendError, match="no fp16 engine.*vitdeploy build .* --fp16"):
        trt_backend.from_bundle(bundle, precision="fp16")
