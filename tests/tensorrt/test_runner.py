"""The tensorrt backend: refuses clearly without TensorRT/GPU or on a provenance mismatch, and on a
GPU runs any camera count of the profile (with and without CUDA graphs) like ONNX Runtime.

The backend's own logic runs on stand-ins (trt_fakes.py, cuda_fakes.py) through both CUDA layers:
pycuda and cuda-python's ``cuda.bindings``."""

import dataclasses
import hashlib
import json
import shutil
import sys

import numpy as np
import pytest
from cuda_fakes import AGX_ORIN, ORIN_NX
from trt_fakes import (
    ACTIVATION_PER_CAMERA,
    FakeCudart,
    FakePycuda,
    FakeTensorRT,
    demo_logits,
    demo_plan,
    install,
)

from vitdeploy.bundle import Bundle, Engine, Precision, Status, TensorSpec
from vitdeploy.errors import BackendError, MissingDependencyError
from vitdeploy.tensorrt import runner as trt_backend
from vitdeploy.tensorrt.compat import device_index
from vitdeploy.tensorrt.cuda import cuda_layer_in_use, open_gpu, pycuda_layer
from vitdeploy.tensorrt.provenance import EngineMismatchError

INSTALL = 'pip install "vitdeploy[tensorrt]"'


BUNDLE_CAMERAS = 3  # the shared ``bundle`` fixture's camera range: 1..3


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


def test_without_a_cuda_layer_the_message_names_both_and_the_install(monkeypatch):
    monkeypatch.delenv("VITDEPLOY_CUDA_LAYER", raising=False)
    for name in ("pycuda", "pycuda.driver", "cuda", "cuda.bindings", "cuda.bindings.runtime"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError, match=r"pycuda .* or cuda-python .* is not available") as info:
        open_gpu(0)
    assert INSTALL in str(info.value)
    assert cuda_layer_in_use().startswith("none (neither pycuda nor cuda-python is installed")


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


@pytest.fixture(params=["pycuda", "cuda-python"])
def fakes(monkeypatch, request):
    """TensorRT and one CUDA layer, stood in for; a discrete GPU (pinned buffers and copies)."""
    cuda = FakePycuda() if request.param == "pycuda" else FakeCudart(integrated=False)
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
        # every context (the main one, one per captured camera count) runs in one activation buffer
        assert len(trt.contexts) == (4 if cuda_graphs else 1)
        assert {c.strategy for c in trt.contexts} == {"USER_MANAGED"}
        assert {c.device_memory for c in trt.contexts} == {trt.contexts[0].device_memory}
        assert trt.contexts[0].device_memory[1] == 3 * ACTIVATION_PER_CAMERA
        d = backend.describe()
        assert d["gpu"] == "Orin (sm 8.7)" and d["io"] == "pinned + device copies"
        assert d["cuda_layer"].startswith("pycuda" if isinstance(cuda, FakePycuda) else "cuda-python")
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


# ---- issue 22: CUDA layers, memory, DLA, dtypes, provenance of Jetson modules --------------------
@pytest.mark.parametrize("layer", ["pycuda", "cuda-python"])
def test_integrated_gpu_runs_zero_copy_through_mapped_host_memory(monkeypatch, plan, layer):
    cuda = FakePycuda(integrated=True) if layer == "pycuda" else FakeCudart(**AGX_ORIN)
    trt = FakeTensorRT(cuda)
    install(monkeypatch, trt, cuda)
    path, record = plan
    with trt_backend.TensorRTBackend(path, engine=record, inputs=SPECS_IN, outputs=SPECS_OUT) as backend:
        assert backend.describe()["io"] == "zero-copy"
        images = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32)
        out = backend.infer({"images": images})
        np.testing.assert_allclose(out["logits"], demo_logits(images), rtol=1e-5)
        bound = trt.contexts[0].addresses
        host = {name: buf.host for name, buf in backend._memory.io.items()}
        assert bound == {name: h.device_address for name, h in host.items()}  # TensorRT reads the host bytes
        if layer == "cuda-python":
            assert "cudaMemcpyAsync" not in cuda.calls  # nothing copied
    assert cuda.memory == {}


def test_cuda_python_layer_reports_the_runtimes_cuda_and_the_module(monkeypatch, plan):
    cuda = FakeCudart(**ORIN_NX, runtime_version=13000)
    install(monkeypatch, FakeTensorRT(cuda), cuda)
    assert cuda_layer_in_use() == "cuda-python"
    gpu = open_gpu(0)
    with gpu.current():
        info = gpu.info
    assert (info.name, info.compute_capability, info.sm_count, info.integrated) == ("Orin", "8.7", 8, True)
    assert gpu.runtime_version() == "13.0" and gpu.library_version() == "13.0.1"


def test_cuda_python_errors_name_the_call(monkeypatch, plan):
    cuda = FakeCudart(fail={"cudaMalloc"})
    install(monkeypatch, FakeTensorRT(cuda), cuda)
    path, record = plan
    with pytest.raises(BackendError, match="cudaMalloc failed with cudaErrorLaunchFailure"):
        trt_backend.TensorRTBackend(path, engine=record, inputs=SPECS_IN, outputs=SPECS_OUT)


def test_pycuda_records_the_cuda_the_process_runs_not_the_one_pycuda_was_built_with(monkeypatch):
    cuda = FakePycuda()  # get_version() says 11.4: what pycuda was compiled with
    install(monkeypatch, FakeTensorRT(cuda), cuda)
    monkeypatch.setattr(pycuda_layer, "cudart_version", lambda: 12080)
    assert cuda_layer_in_use() == "pycuda"  # what `vitdeploy doctor` will report
    assert open_gpu(0).runtime_version() == "12.8"  # the CUDA runtime library's own answer
    monkeypatch.setattr(pycuda_layer, "cudart_version", lambda: None)
    assert open_gpu(0).runtime_version() == "12.6"  # no runtime library: the driver's CUDA
    monkeypatch.setenv("VITDEPLOY_CUDA_LAYER", "cuda-python")
    with pytest.raises(MissingDependencyError, match="cuda-python"):
        open_gpu(0)
    monkeypatch.setenv("VITDEPLOY_CUDA_LAYER", "numba")
    with pytest.raises(BackendError, match="not a CUDA layer; choose one of: pycuda, cuda-python"):
        open_gpu(0)


def test_activation_memory_report_from_the_engines_sizes(fakes, plan):
    path, record = plan
    with trt_backend.TensorRTBackend(path, engine=record, inputs=SPECS_IN, outputs=SPECS_OUT) as backend:
        rows = backend.activation_memory()
        images = np.ones((1, 3, 4, 4), np.float32)
        np.testing.assert_allclose(backend.infer({"images": images})["logits"], demo_logits(images))  # still runs
    mib = ACTIVATION_PER_CAMERA
    assert [(r.cameras, r.contexts, r.needed_bytes) for r in rows] == [(1, 2, mib), (2, 3, 2 * mib), (3, 4, 3 * mib)]
    assert [r.saved_bytes for r in rows] == [3 * mib, 6 * mib, 9 * mib]  # (1 + n) contexts of 3 MiB -> one


def test_cuda_graphs_are_refused_for_a_dla_engine_before_tensorrt_runs(fakes, plan):
    trt, _cuda = fakes
    path, record = plan
    dla = dataclasses.replace(record, dla_core=0, precision=Precision.FP16)
    with pytest.raises(BackendError, match="CUDA graphs and DLA offloading are not simultaneously supported"):
        trt_backend.TensorRTBackend(path, engine=dla, inputs=SPECS_IN, outputs=SPECS_OUT, cuda_graphs=True)
    assert trt.deserialized == []


def test_a_bf16_tensor_is_a_clear_error_not_a_type_error(fakes, tmp_path):
    trt, _cuda = fakes
    data = demo_plan(dtypes={"logits": "BF16"})
    path = tmp_path / "model.fp32.orin-sm87.plan"
    path.write_bytes(data)
    record = _record(plan_sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(BackendError, match=r"tensor 'logits' of model.fp32.orin-sm87.plan is BF16, which numpy"):
        trt_backend.TensorRTBackend(path, engine=record, inputs=SPECS_IN, outputs=SPECS_OUT)


def test_a_plan_from_an_agx_orin_is_refused_on_an_orin_nx(monkeypatch, plan):
    cuda = FakePycuda(**ORIN_NX)
    trt = FakeTensorRT(cuda)
    install(monkeypatch, trt, cuda)
    path, record = plan
    agx = dataclasses.replace(record, sm_count=16, gpu_memory_mib=61 * 1024)
    with pytest.raises(EngineMismatchError, match=r"GPU module: plan built with Orin \(sm 8.7, 16 SMs, 61.0 GiB\), "
                                                  r"this machine has Orin \(sm 8.7, 8 SMs, 15.0 GiB\)"):
        trt_backend.TensorRTBackend(path, engine=agx, inputs=SPECS_IN, outputs=SPECS_OUT)
    assert trt.deserialized == []
    nx = dataclasses.replace(record, sm_count=8, gpu_memory_mib=15 * 1024 + 300)  # another JetPack's carveout
    with trt_backend.TensorRTBackend(path, engine=nx, inputs=SPECS_IN, outputs=SPECS_OUT) as backend:
        assert backend.machine.sm_count == 8
