"""What bench and eval run when nothing is named: the library's defaults, which the CLI uses too."""

import dataclasses

from vitdeploy.bundle import Bundle, Engine, Precision
from vitdeploy.runtime.configs import Configuration, default_backends, plan


def test_default_plan_is_onnxruntime_and_torch_at_one_and_six_cameras(bundle):
    configs = plan(bundle)
    assert default_backends(bundle) == ["onnxruntime", "torch"]
    assert configs == [Configuration(b, Precision.FP32, n) for b in ("onnxruntime", "torch") for n in (1, 6)]


def test_a_bundle_with_engines_adds_tensorrt_and_few_cameras_cap_the_count(bundle):
    engine = Engine(file="model.plan", graph="model", precision=Precision.FP32, tensorrt_version="10.3",
                    cuda_version="12.6", gpu_name="Orin", compute_capability="8.7", profile={"cameras": [1, 2, 2]},
                    onnx_sha256="", plan_sha256="", build_seconds=0.0, built_at="")
    m = dataclasses.replace(bundle.manifest, engines=[engine], max_cameras=2)
    configs = plan(Bundle(bundle.path, m))
    assert {c.backend for c in configs} == {"onnxruntime", "torch", "tensorrt"}
    assert sorted({c.cameras for c in configs}) == [1, 2]
