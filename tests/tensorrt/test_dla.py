"""DLA engines as NVIDIA documents them (issue 22 point 1, issue 15's --print-trtexec defect):
one camera count (DLA has no dynamic dimensions), FP16/INT8 only, TensorRT 11.4.1+ for strongly
typed networks, no DLA on Thor, and a build whose layers all fell back to the GPU marked failed."""

import hashlib
import json
import shutil

import pytest
from cuda_fakes import FakePycuda
from trt_fakes import FakeTensorRT, install

from vitdeploy.bundle import Bundle, HeadSpec, Precision, Status, Variant
from vitdeploy.bundle.manifest import Graph, Manifest, Preprocessing, TensorSpec
from vitdeploy.errors import BackendError
from vitdeploy.runtime.backends import tensorrt as trt_backend
from vitdeploy.tensorrt.build import BuildOptions, build_engines
from vitdeploy.tensorrt.dla import check_dla_request, layer_placement
from vitdeploy.tensorrt.errors import BuildError
from vitdeploy.tensorrt.profile import DimRange, camera_profile
from vitdeploy.tensorrt.trtexec import BuilderSettings

DETR = Graph(name="model", inputs=[TensorSpec("images", "float32", ["cameras", 3, 64, 96])],
             outputs=[TensorSpec("logits", "float32", ["cameras", 10, 7])])
DECODER = Graph(name="prompt_decoder", inputs=[TensorSpec("points", "float32", ["cameras", "points", 2])],
                outputs=[TensorSpec("masks", "float32", ["cameras", 3, 64, 64])])
MANIFEST = Manifest(model="m", head=HeadSpec("detr"), parameters=1, image_size=(64, 96), patch_size=16, max_cameras=6,
                    opset=18, preprocessing=Preprocessing(image_size=(64, 96)), graphs=[DETR, DECODER])
DLA_TRT = "11.4.1.20"  # the first release documenting strongly typed networks on DLA


# ---- the static profile ---------------------------------------------------------------------------
def test_a_dla_profile_is_static_at_the_camera_count_asked():
    assert camera_profile(MANIFEST, DETR, static=True).to_record() == {"cameras": [6, 6, 6]}
    assert camera_profile(MANIFEST, DETR, max_cameras=4, static=True).to_record() == {"cameras": [4, 4, 4]}
    assert camera_profile(MANIFEST, DETR, opt_cameras=2, static=True).to_record() == {"cameras": [2, 2, 2]}
    with pytest.raises(BuildError, match=r"one camera count .* got \[1, 4\]; give it with --max-cameras N"):
        camera_profile(MANIFEST, DETR, min_cameras=1, max_cameras=4, static=True)
    with pytest.raises(BuildError, match="give --dim points=N:N:N"):
        camera_profile(MANIFEST, DECODER, other_dims={"points": DimRange(1, 4, 16)}, static=True)
    fixed = camera_profile(MANIFEST, DECODER, other_dims={"points": DimRange(4, 4, 4)}, static=True)
    assert fixed.to_record() == {"cameras": [6, 6, 6], "points": [4, 4, 4]}


# ---- what DLA can build ----------------------------------------------------------------------------
def test_fp32_is_refused_for_dla():
    with pytest.raises(BuildError, match=r"DLA runs FP16 and INT8 only; build --fp16 or --int8 .*\(drop --dla-core\)"):
        check_dla_request(dla_core=0, precision=Precision.FP32)


@pytest.mark.parametrize("version", ["10.3.0.30", "10.7.0.23", "11.0.0.114", "11.3.0.1", "11.4.0.106"])
def test_tensorrt_releases_without_strongly_typed_dla_are_refused_saying_what_works(version):
    with pytest.raises(BuildError, match=r"documented from TensorRT 11\.4\.1.*Jetson AGX Orin with JetPack 7\.2\.2"):
        check_dla_request(dla_core=0, precision=Precision.FP16, tensorrt_version=version)


def test_tensorrt_11_4_1_and_later_may_build_for_dla():
    for version in (DLA_TRT, "11.5.0.3", "12.0.0.1"):
        check_dla_request(dla_core=1, precision=Precision.INT8, tensorrt_version=version)
    check_dla_request(dla_core=None, precision=Precision.FP32, tensorrt_version="10.3.0.30")  # not a DLA build
    with pytest.raises(BuildError, match="no 10.x release documents strongly typed networks on DLA"):
        check_dla_request(dla_core=0, precision=Precision.FP16, generation=10)
    check_dla_request(dla_core=0, precision=Precision.FP16, generation=11)


def test_layer_placement_from_the_engine_inspector():
    info = json.dumps({"Layers": [{"Name": "images to nvm", "LayerType": "Reformat"},
                                  {"Name": "{ForeignNode[/patch_embed/Conv]}", "LayerType": "DLA"},
                                  {"Name": "{ForeignNode[/blocks.0/...]}", "LayerType": "Myelin"}]})
    placement = layer_placement(info)
    assert (placement.dla, placement.total, placement.on_dla) == (1, 3, True)
    assert placement.summary() == "1 of 3 layers on the DLA"
    said = layer_placement(info, ["setDefaultDeviceType was called but no layer in the network can run on DLA."])
    assert not said.on_dla and "no layer runs on the DLA" in said.summary()
    names_only = layer_placement(json.dumps({"Layers": ["conv1", "fc"]}))  # LAYER_NAMES_ONLY: nothing to tell
    assert names_only.dla == 0 and not names_only.on_dla
    assert layer_placement("not json").total == 0


# ---- the build and the trtexec line ---------------------------------------------------------------
BUNDLE_CAMERAS = 4  # the shared ``bundle`` fixture's camera range: 1..4


@pytest.fixture
def dla_bundle(bundle):
    """The shared vit-test-detr bundle (cameras 1..4) with a stand-in FP16 variant: the FP32 graph
    registered as fp16 (the fake TensorRT runs whatever ONNX it is given; DLA refuses FP32 before
    anything else). Its folder."""
    dst = bundle.path
    shutil.copy(dst / "model.onnx", dst / "model.fp16.onnx")
    sha = hashlib.sha256((dst / "model.fp16.onnx").read_bytes()).hexdigest()
    bundle.manifest.graph().set_variant(Variant(Precision.FP16, "model.fp16.onnx", sha))
    bundle.save()
    return dst


def _fake(monkeypatch, version=DLA_TRT, **kwargs):
    cuda = FakePycuda(integrated=True)
    trt = FakeTensorRT(cuda, version, **kwargs)
    install(monkeypatch, trt, cuda)
    return trt


def test_print_trtexec_for_dla_prints_static_shapes(invoke, no_tensorrt, dla_bundle):
    r = invoke("build", str(dla_bundle), "--fp16", "--dla-core", "0", "--print-trtexec",
               "--trt-version", "11")
    assert r.exit_code == 0, r.output
    for shapes in ("--minShapes=images:4x3x64x96", "--optShapes=images:4x3x64x96", "--maxShapes=images:4x3x64x96"):
        assert shapes in r.output  # was min 1 / opt 4 / max 4
    assert "--useDLACore=0" in r.output and "--allowGPUFallback" in r.output
    r = invoke("build", str(dla_bundle), "--fp16", "--dla-core", "0", "--print-trtexec",
               "--trt-version", "11", "--max-cameras", "2")
    assert r.exit_code == 0 and "--minShapes=images:2x3x64x96" in r.output


@pytest.mark.parametrize(("args", "message"), [
    (["--dla-core", "0", "--trt-version", "11"], "DLA runs FP16 and INT8 only"),
    (["--fp16", "--dla-core", "0", "--trt-version", "10"], "no 10.x release documents strongly typed"),
    (["--fp16", "--dla-core", "0", "--trt-version", "11", "--min-cameras", "1", "--max-cameras", "3"],
     "a DLA engine runs one camera count"),
])
def test_print_trtexec_refuses_what_dla_cannot_build(invoke, no_tensorrt, dla_bundle, args, message):
    r = invoke("build", str(dla_bundle), "--print-trtexec", *args)
    assert r.exit_code == 1 and message in r.output, r.output


def test_a_dla_build_is_static_detailed_and_counts_its_dla_layers(dla_bundle, monkeypatch):
    trt = _fake(monkeypatch, dla_cores=2)
    options = BuildOptions(precision=Precision.FP16, max_cameras=3, settings=BuilderSettings(dla_core=1))
    [r] = build_engines(dla_bundle, options)
    e = r.engine
    assert r.passed and e.status is Status.GOOD and e.dla_core == 1 and e.dla_layers == 1
    assert e.file == "model.fp16.orin-sm87-dla1.plan" and e.profile == {"cameras": [3, 3, 3]}
    assert ("dla_build", 1, "DETAILED") in trt.calls
    assert set(e.golden["cases"]) == {"cameras=3"}
    assert (e.sm_count, e.gpu_memory_mib) == (16, 61 * 1024)  # the module is recorded with the chip
    with pytest.raises(BackendError, match="CUDA graphs and DLA offloading are not simultaneously supported"):
        trt_backend.from_bundle(Bundle.open(dla_bundle), precision="fp16", cuda_graphs=True)
    with trt_backend.from_bundle(Bundle.open(dla_bundle), precision="fp16") as backend:
        assert backend.dim_ranges == {"cameras": (3, 3)}


def test_a_dla_engine_with_no_layer_on_the_dla_is_marked_failed_and_refused(dla_bundle, monkeypatch):
    _fake(monkeypatch, dla_cores=2, dla_runs=False)
    [r] = build_engines(dla_bundle, BuildOptions(precision=Precision.FP16, settings=BuilderSettings(dla_core=0)))
    assert not r.passed and r.golden.passed  # the numbers are right: it just all ran on the GPU
    assert r.engine.status is Status.FAILED and r.engine.dla_layers == 0
    assert "no layer runs on the DLA" in r.placement.summary()
    with pytest.raises(BackendError, match="DLA core 0: no layer runs on the DLA"):
        trt_backend.from_bundle(Bundle.open(dla_bundle), precision="fp16")


@pytest.mark.parametrize(("version", "cores", "message"), [
    ("10.3.0.30", 2, "documented from TensorRT 11.4.1"),  # JetPack 6's TensorRT
    (DLA_TRT, 0, "has no DLA"),  # a Thor
])
def test_dla_builds_that_cannot_work_are_refused_before_anything_is_written(dla_bundle, monkeypatch, version, cores,
                                                                            message):
    _fake(monkeypatch, version, dla_cores=cores)
    manifest = (dla_bundle / "manifest.json").read_bytes()
    with pytest.raises(BuildError, match=message):
        build_engines(dla_bundle, BuildOptions(precision=Precision.FP16, settings=BuilderSettings(dla_core=0)))
    assert (dla_bundle / "manifest.json").read_bytes() == manifest and not list(dla_bundle.glob("*.plan"))
