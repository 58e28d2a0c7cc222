"""`vitdeploy build` where there is no TensorRT or GPU: a clear message, exit 1, an untouched bundle;
and --print-trtexec, which needs neither."""

import shutil
import sys
from pathlib import Path

import pytest

from vitdeploy.errors import MissingDependencyError
from vitdeploy.tensorrt.build import BuildOptions, build_engines

INSTALL = 'pip install "vitdeploy[tensorrt]"'
BUNDLE_CAMERAS = 4  # the shared ``bundle`` fixture's camera range: 1..4


@pytest.mark.parametrize("extra", [[], ["--fp16"], ["--int8", "--calib-data", "frames"],
                                   ["--max-cameras", "2", "--timing-cache", "{tmp}/t.cache"]])
def test_build_without_tensorrt_says_how_to_install_and_changes_nothing(no_tensorrt, bundle, tmp_path, extra,
                                                                        invoke, unchanged):
    with unchanged(bundle.path):
        r = invoke("build", bundle.path, *[a.replace("{tmp}", str(tmp_path)) for a in extra])
    assert r.exit_code == 1, r.output
    assert INSTALL in r.output and "TensorRT" in r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "t.cache").exists()


def test_the_library_raises_missing_dependency(no_tensorrt, bundle):
    with pytest.raises(MissingDependencyError, match=r"vitdeploy\[tensorrt\]"):
        build_engines(bundle.path, BuildOptions())


@pytest.mark.parametrize(("generation", "typed"), [("10", True), ("11", False)])
def test_print_trtexec_works_without_tensorrt(no_tensorrt, bundle, generation, typed, invoke, unchanged):
    with unchanged(bundle.path):
        r = invoke("build", bundle.path, "--print-trtexec", "--trt-version", generation, "--max-cameras", "2")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("trtexec \\")
    assert f"--onnx={bundle.path / 'model.onnx'}" in r.output
    assert "--maxShapes=images:2x3x64x96" in r.output
    assert ("--stronglyTyped" in r.output) is typed


def test_a_folder_named_tensorrt_is_not_taken_for_tensorrt(monkeypatch):
    """tests/tensorrt is on the path in a test run: Python imports it as a namespace package."""
    import types

    from vitdeploy.tensorrt.compat import import_tensorrt

    shadow = types.ModuleType("tensorrt")
    shadow.__path__ = ["/somewhere/tensorrt"]
    monkeypatch.setitem(sys.modules, "tensorrt", shadow)
    with pytest.raises(MissingDependencyError, match=r"/somewhere/tensorrt'\], is not TensorRT's package"):
        import_tensorrt()


def test_print_trtexec_needs_a_generation_when_none_is_installed(no_tensorrt, bundle, invoke):
    r = invoke("build", bundle.path, "--print-trtexec")
    assert r.exit_code == 1
    assert "--trt-version 10 or 11" in r.output


@pytest.mark.parametrize(("args", "message"), [
    (["--fp16", "--int8"], "choose one precision"),
    (["--max-cameras", "9"], "--max-cameras 9 is outside 1..4"),
    (["--builder-opt-level", "7"], "0..5"),
    (["--dim", "points=1:2"], "NAME=MIN:OPT:MAX"),
    (["--dim", "points=1:2:3"], "no such dynamic axis"),
    (["--trt-version", "10"], "only goes with --print-trtexec"),
    (["--fp16", "--print-trtexec", "--trt-version", "10"], "no fp16 ONNX"),
])
def test_bad_options_are_one_line_errors_before_anything_else(no_tensorrt, bundle, args, message, invoke,
                                                              unchanged):
    with unchanged(bundle.path):
        r = invoke("build", bundle.path, *args)
    assert r.exit_code == 1
    assert message in r.output, r.output
    assert "Traceback" not in r.output


def test_build_of_a_missing_bundle(tmp_path, invoke):
    r = invoke("build", tmp_path / "nothing")
    assert r.exit_code == 1 and "does not exist" in r.output


# ---- calibrating first when the precision's ONNX is missing --------------------------------------
def _ensure(bundle_path, **options):
    from vitdeploy.bundle import Bundle
    from vitdeploy.tensorrt.build import _ensure_variants

    b = Bundle.open(bundle_path)
    return _ensure_variants(b, BuildOptions(**options), list(b.manifest.graphs), lambda _msg: None)


def test_missing_precision_without_data_names_both_ways(bundle):
    from vitdeploy.bundle import Precision
    from vitdeploy.tensorrt.errors import BuildError

    with pytest.raises(BuildError, match=r"no int8 ONNX.*vitdeploy calibrate .* --precision int8.*--calib-data"):
        _ensure(bundle.path, precision=Precision.INT8)


def test_calibrates_first_through_the_calibration_package(bundle, tmp_path, monkeypatch):
    import vitdeploy.calibration
    from vitdeploy.bundle import Bundle, Precision, Variant, sha256_file

    calls = []

    def calibrate_bundle(bundle_path, *, precision, data):
        calls.append((Path(bundle_path), precision, data))
        b = Bundle.open(bundle_path)
        shutil.copy(b.onnx_path(), b.file("model.fp16.onnx"))
        b.manifest.graph().set_variant(Variant(Precision.FP16, "model.fp16.onnx", sha256_file(b.file("model.fp16.onnx"))))
        b.save()

    monkeypatch.setattr(vitdeploy.calibration, "calibrate_bundle", calibrate_bundle, raising=False)
    b = _ensure(bundle.path, precision=Precision.FP16, calib_data=tmp_path / "frames")
    assert calls == [(bundle.path, Precision.FP16, tmp_path / "frames")]
    assert b.manifest.graph().variant("fp16").file == "model.fp16.onnx"
    assert _ensure(bundle.path, precision=Precision.FP16, calib_data=tmp_path / "frames") is not None
    assert len(calls) == 1  # present now: not calibrated again


def test_calibration_that_makes_nothing_or_is_absent_is_an_error(bundle, tmp_path, monkeypatch):
    import vitdeploy.calibration
    from vitdeploy.bundle import Precision
    from vitdeploy.tensorrt.errors import BuildError

    monkeypatch.setattr(vitdeploy.calibration, "calibrate_bundle", lambda *a, **k: None, raising=False)
    with pytest.raises(BuildError, match="still has no int8 ONNX"):
        _ensure(bundle.path, precision=Precision.INT8, calib_data=tmp_path)
    monkeypatch.delattr(vitdeploy.calibration, "calibrate_bundle", raising=False)
    with pytest.raises(BuildError, match="cannot calibrate"):
        _ensure(bundle.path, precision=Precision.INT8, calib_data=tmp_path)
