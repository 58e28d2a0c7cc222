"""The optimisation profile over the camera axis, and the trtexec line for each TensorRT generation."""

import shlex
from pathlib import Path

import pytest

from vitdeploy.bundle import HeadSpec, Manifest, Precision, Preprocessing
from vitdeploy.bundle.manifest import Graph, TensorSpec
from vitdeploy.tensorrt.errors import BuildError
from vitdeploy.tensorrt.profile import DimRange, Profile, camera_profile, parse_dim
from vitdeploy.tensorrt.trtexec import BuilderSettings, format_command, trtexec_argv

DETR = Graph(name="model", inputs=[TensorSpec("images", "float32", ["cameras", 3, 64, 96])],
             outputs=[TensorSpec("logits", "float32", ["cameras", 10, 7]),
                      TensorSpec("boxes", "float32", ["cameras", 10, 4])])
DECODER = Graph(name="prompt_decoder",
                inputs=[TensorSpec("image_embeddings", "float32", ["cameras", 256, 64, 64]),
                        TensorSpec("point_coords", "float32", ["cameras", "points", 2]),
                        TensorSpec("point_labels", "float32", ["cameras", "points"])],
                outputs=[TensorSpec("low_res_masks", "float32", ["cameras", 4, 256, 256])])


def _manifest(max_cameras=6) -> Manifest:
    return Manifest(model="m", head=HeadSpec("detr"), parameters=1, image_size=(64, 96), patch_size=16,
                    max_cameras=max_cameras, opset=18, preprocessing=Preprocessing(image_size=(64, 96)),
                    graphs=[DETR, DECODER])


# ---- profile ------------------------------------------------------------------------------------
def test_default_profile_is_one_to_the_bundles_max_tuned_for_the_full_rig():
    p = camera_profile(_manifest(), DETR)
    assert p.to_record() == {"cameras": [1, 6, 6]}
    assert p.input_shapes(DETR) == {"images": ((1, 3, 64, 96), (6, 3, 64, 96), (6, 3, 64, 96))}


def test_explicit_cameras_and_defaults_follow_max():
    assert camera_profile(_manifest(), DETR, max_cameras=4).to_record() == {"cameras": [1, 4, 4]}
    assert camera_profile(_manifest(), DETR, min_cameras=2, opt_cameras=3, max_cameras=5).to_record() == \
        {"cameras": [2, 3, 5]}
    assert camera_profile(_manifest(), DETR, opt_cameras=2).to_record() == {"cameras": [1, 2, 6]}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_cameras": 7}, "--max-cameras 7 is outside 1..6"),
    ({"min_cameras": 0}, "--min-cameras 0 is outside 1..6"),
    ({"opt_cameras": 9}, "--opt-cameras 9 is outside 1..6"),
    ({"min_cameras": 4, "max_cameras": 2}, "min <= opt <= max"),
    ({"opt_cameras": 5, "max_cameras": 3}, "min <= opt <= max"),
])
def test_cameras_outside_the_bundle_are_refused_with_the_range(kwargs, message):
    with pytest.raises(BuildError, match=message):
        camera_profile(_manifest(), DETR, **kwargs)


def test_another_dynamic_axis_needs_its_range():
    with pytest.raises(BuildError, match=r"dynamic axis 'points'.*--dim points=MIN:OPT:MAX"):
        camera_profile(_manifest(), DECODER)
    p = camera_profile(_manifest(), DECODER, max_cameras=2, other_dims={"points": DimRange(1, 4, 16)})
    assert p.to_record() == {"cameras": [1, 2, 2], "points": [1, 4, 16]}
    shapes = p.input_shapes(DECODER)
    assert shapes["point_coords"] == ((1, 1, 2), (2, 4, 2), (2, 16, 2))
    assert shapes["point_labels"] == ((1, 1), (2, 4), (2, 16))
    assert shapes["image_embeddings"][2] == (2, 256, 64, 64)
    with pytest.raises(BuildError, match="--min/--opt/--max-cameras"):
        camera_profile(_manifest(), DETR, other_dims={"cameras": DimRange(1, 1, 1)})


def test_static_inputs_are_left_out_of_the_shapes():
    g = Graph(name="g", inputs=[TensorSpec("a", "float32", [1, 3]), TensorSpec("b", "float32", ["cameras", 3])],
              outputs=[])
    assert list(camera_profile(_manifest(), g).input_shapes(g)) == ["b"]


def test_parse_dim_and_record_round_trip():
    assert parse_dim("points=1:4:16") == ("points", DimRange(1, 4, 16))
    for bad in ("points=1:4", "points", "=1:2:3", "points=4:2:1"):
        with pytest.raises(BuildError):
            parse_dim(bad)
    p = Profile({"cameras": DimRange(1, 2, 3), "points": DimRange(1, 1, 8)})
    assert Profile.from_record(p.to_record()) == p


# ---- trtexec ------------------------------------------------------------------------------------
def _argv(generation, precision=Precision.FP16, **settings):
    profile = camera_profile(_manifest(), DETR, max_cameras=4)
    return trtexec_argv(onnx=Path("b/model.fp16.onnx"), plan=Path("b/model.fp16.plan"), graph=DETR,
                        precision=precision, profile=profile, settings=BuilderSettings(**settings),
                        generation=generation)


def test_trtexec_for_tensorrt_10_is_strongly_typed():
    assert _argv(10) == [
        "trtexec", "--onnx=b/model.fp16.onnx", "--saveEngine=b/model.fp16.plan", "--skipInference",
        "--stronglyTyped",
        "--minShapes=images:1x3x64x96", "--optShapes=images:4x3x64x96", "--maxShapes=images:4x3x64x96",
        "--memPoolSize=workspace:4096",
    ]


def test_trtexec_for_tensorrt_11_has_no_typing_or_precision_flags():
    argv = _argv(11)
    assert "--stronglyTyped" not in argv  # always on in 11.x
    assert argv == [a for a in _argv(10) if a != "--stronglyTyped"]
    for generation in (10, 11):
        for precision in Precision:
            assert not {"--fp16", "--int8", "--best", "--bf16"} & set(_argv(generation, precision))


def test_trtexec_fp32_keeps_tf32_off_and_options_map_to_flags():
    argv = _argv(10, Precision.FP32, workspace_gb=1.5, timing_cache=Path("t.cache"), builder_opt_level=5,
                 dla_core=0, version_compatible=True)
    assert "--noTF32" in argv
    for flag in ("--memPoolSize=workspace:1536", "--timingCacheFile=t.cache", "--builderOptimizationLevel=5",
                 "--useDLACore=0", "--allowGPUFallback", "--versionCompatible"):
        assert flag in argv
    assert "--noTF32" not in _argv(10, Precision.FP16)


def test_trtexec_quotes_awkward_names_and_refuses_other_generations():
    g = Graph(name="g", inputs=[TensorSpec("input:0", "float32", ["cameras", 3])], outputs=[])
    argv = trtexec_argv(onnx="m.onnx", plan="m.plan", graph=g, precision=Precision.FP32,
                        profile=camera_profile(_manifest(), g), settings=BuilderSettings(), generation=11)
    assert "--minShapes='input:0':1x3" in argv
    with pytest.raises(BuildError, match=r"TensorRT 9.x"):
        _argv(9)
    text = format_command(argv)
    assert text.startswith("trtexec \\\n    --onnx=m.onnx")
    assert shlex.split(text.replace("\\\n", " ")) == argv  # pastes back into the same argv


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"workspace_gb": 0}, "--workspace-gb"),
    ({"builder_opt_level": 6}, "0..5"),
    ({"dla_core": -1}, "--dla-core"),
])
def test_builder_settings_are_validated(kwargs, message):
    with pytest.raises(BuildError, match=message):
        BuilderSettings(**kwargs)
