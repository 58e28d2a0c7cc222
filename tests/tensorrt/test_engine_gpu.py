"""`vitdeploy build` on a GPU with TensorRT: vit-test-detr at each precision, checked and recorded.

Skipped (with the reason) where TensorRT, pycuda or a GPU is missing; deselected by default
(``-m tensorrt`` runs them).
"""

from pathlib import Path

import pytest

from vitdeploy.bundle import Bundle, Precision, Status, sha256_file
from vitdeploy.tensorrt.agreement import TOLERANCES, compare_output
from vitdeploy.tensorrt.build import BuildOptions, build_engines, trtexec_commands
from vitdeploy.tensorrt.compat import tensorrt_major
from vitdeploy.tensorrt.golden import GOLDEN_FILE, load_golden
from vitdeploy.tensorrt.trtexec import BuilderSettings

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu]
MAX_CAMERAS = BUNDLE_CAMERAS = 3  # the shared ``bundle`` fixture's camera range: 1..3


@pytest.fixture
def trt(tensorrt_gpu):
    return tensorrt_gpu


@pytest.mark.parametrize("precision", list(Precision))
def test_build_each_precision_checks_golden_and_records_provenance(trt, bundle, tmp_path, precision):
    cache = tmp_path / "timing.cache"
    # FP16/INT8: calibrated first, on the calibration package's synthetic driving frames
    options = BuildOptions(precision=precision, calib_data=Path("synthetic"),
                           settings=BuilderSettings(timing_cache=cache))
    [result] = build_engines(bundle.path, options)
    e = result.engine
    assert result.passed, result.golden.summary()
    assert e.status is Status.GOOD and e.golden["passed"]
    assert set(e.golden["cases"]) == {"cameras=1", f"cameras={MAX_CAMERAS}"}
    assert e.file.startswith(f"model.{precision.value}.") and e.file.endswith(f"-sm{e.compute_capability.replace('.', '')}.plan")
    assert e.tensorrt_version == trt.__version__ and e.cuda_version and e.gpu_name
    assert e.profile == {"cameras": [1, MAX_CAMERAS, MAX_CAMERAS]}
    assert e.plan_sha256 == sha256_file(result.plan_path)
    b = Bundle.open(bundle.path)
    assert e.onnx_sha256 == b.manifest.graph().variant(precision).sha256
    assert [x.file for x in b.manifest.engines] == [e.file]  # recorded in the manifest
    assert cache.stat().st_size > 0 and (bundle.path / GOLDEN_FILE).is_file()
    assert not [p for p in bundle.path.iterdir() if p.name.startswith(".")]  # no temporaries left

    from vitdeploy.runtime.backends.tensorrt import from_bundle

    golden = load_golden(bundle.path / GOLDEN_FILE)["model"]
    with from_bundle(b, precision=precision) as backend:
        def run(feeds):
            return backend.infer({s.name: feeds[s.name].astype(s.dtype) for s in backend.inputs})

        for cameras in (1, MAX_CAMERAS):
            out = golden.outputs_of(run, b.manifest.graph(), cameras=cameras)
            for name, r in golden.outputs.items():
                assert compare_output(name, r, out[name], TOLERANCES[precision]).passed


def test_rebuild_replaces_the_record_and_cli_reports(trt, bundle, invoke):
    r = invoke("build", str(bundle.path), "--max-cameras", "2", "--opt-cameras", "1")
    assert r.exit_code == 0, r.output
    assert "golden vs fp32 onnxruntime: pass" in r.output and "cameras 1..2 (opt 1)" in r.output
    r = invoke("build", str(bundle.path))
    assert r.exit_code == 0, r.output
    engines = Bundle.open(bundle.path).manifest.engines
    assert len(engines) == 1 and engines[0].profile == {"cameras": [1, MAX_CAMERAS, MAX_CAMERAS]}


def test_print_trtexec_uses_the_installed_generation(trt, bundle):
    [command] = trtexec_commands(bundle.path, BuildOptions())
    assert ("--stronglyTyped" in command) is (tensorrt_major(trt.__version__) == 10)


def test_activation_memory_is_shared_and_reported(trt, bundle):
    """On a GPU: the contexts share one buffer of device_memory_size_v2, and the report says what
    TensorRT needs per camera count (the figures issue 22 asks for, from the engine itself)."""
    [result] = build_engines(bundle.path, BuildOptions())
    from vitdeploy.runtime.backends.tensorrt import from_bundle
    from vitdeploy.tensorrt.memory import format_rows

    with from_bundle(Bundle.open(bundle.path), cuda_graphs=True) as backend:
        rows = backend.activation_memory()
        print(format_rows(rows))
        assert [r.cameras for r in rows] == list(range(1, MAX_CAMERAS + 1))
        assert all(0 < r.needed_bytes <= r.shared_bytes for r in rows)
        assert rows[-1].saved_bytes == MAX_CAMERAS * rows[-1].shared_bytes
        golden = load_golden(bundle.path / GOLDEN_FILE)["model"]
        for cameras in (1, MAX_CAMERAS, 2):  # graphs captured after the report still compute right
            inputs, ref = golden.take(Bundle.open(bundle.path).manifest.graph(), cameras)
            out = backend.infer(inputs)
            assert compare_output("logits", ref["logits"], out["logits"], TOLERANCES[Precision.FP32]).passed
