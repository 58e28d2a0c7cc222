"""Plan naming and the provenance check the tensorrt backend runs before it deserializes a plan."""

import dataclasses

import pytest

from vitdeploy.bundle import Engine, HeadSpec, Manifest, Precision, Preprocessing, Status
from vitdeploy.bundle.manifest import Graph, TensorSpec
from vitdeploy.errors import BackendError
from vitdeploy.tensorrt.provenance import (
    EngineMismatchError,
    Machine,
    MismatchKind,
    check_provenance,
    ensure_runnable,
    gpu_slug,
    plan_file_name,
    rebuild_command,
    release,
    tensorrt_can_run,
)

ORIN = Machine(tensorrt_version="10.3.0.30", cuda_version="12.6", gpu_name="Orin", compute_capability="8.7")


def _engine(**changes) -> Engine:
    e = Engine(file="model.fp16.orin-sm87.plan", graph="model", precision=Precision.FP16,
               tensorrt_version="10.3.0.30", cuda_version="12.6", gpu_name="Orin", compute_capability="8.7",
               profile={"cameras": [1, 6, 6]}, onnx_sha256="a" * 64, plan_sha256="b" * 64, build_seconds=12.5,
               built_at="2025-01-01T00:00:00+00:00", onnx_file="model.fp16.onnx")
    return dataclasses.replace(e, **changes)


@pytest.mark.parametrize(("name", "cc", "slug"), [
    ("Orin", "8.7", "orin-sm87"),
    ("Orin (nvgpu)", "8.7", "orin-sm87"),
    ("NVIDIA H100 80GB HBM3", "9.0", "h100-sm90"),
    ("NVIDIA A100-SXM4-40GB", "8.0", "a100-sm80"),
    ("NVIDIA GeForce RTX 4090", "8.9", "rtx4090-sm89"),
    ("Tesla T4", "7.5", "t4-sm75"),
    ("Xavier", "7.2", "xavier-sm72"),
    ("NVIDIA Thor", "11.0", "thor-sm110"),
])
def test_gpu_slug(name, cc, slug):
    assert gpu_slug(name, cc) == slug


def test_plan_file_name():
    assert plan_file_name("model", "fp16", "orin-sm87") == "model.fp16.orin-sm87.plan"
    assert plan_file_name("image_encoder", Precision.INT8, "orin-sm87", dla_core=1) == \
        "image_encoder.int8.orin-sm87-dla1.plan"
    assert ORIN.gpu_slug == "orin-sm87"


def test_release_ignores_packaging_suffixes():
    assert release("10.14.1.48.post1") == (10, 14, 1, 48)
    assert release("11.0.0") == (11, 0, 0)


def test_a_matching_machine_has_no_mismatch():
    assert check_provenance(_engine(), ORIN) == []
    ensure_runnable(_engine(), ORIN, bundle_path="b")  # does not raise


@pytest.mark.parametrize(("machine", "kind"), [
    (dataclasses.replace(ORIN, tensorrt_version="10.4.0.26"), MismatchKind.TENSORRT),
    (dataclasses.replace(ORIN, tensorrt_version="11.0.0.114"), MismatchKind.TENSORRT),
    (dataclasses.replace(ORIN, cuda_version="11.4"), MismatchKind.CUDA),
    (dataclasses.replace(ORIN, gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0"),
     MismatchKind.COMPUTE_CAPABILITY),
    (dataclasses.replace(ORIN, gpu_name="Orin NX"), MismatchKind.GPU),
])
def test_each_kind_of_mismatch_is_found_and_named(machine, kind):
    found = check_provenance(_engine(), machine)
    assert [m.kind for m in found] == [kind]
    with pytest.raises(EngineMismatchError) as info:
        ensure_runnable(_engine(), machine, bundle_path="bundles/det")
    message = str(info.value)
    assert kind.value in message
    assert found[0].built in message and found[0].running in message  # both sides
    assert "vitdeploy build bundles/det --fp16 --min-cameras 1 --opt-cameras 6 --max-cameras 6" in message
    assert isinstance(info.value, BackendError)


def test_a_newer_cuda_minor_is_fine():
    assert check_provenance(_engine(), dataclasses.replace(ORIN, cuda_version="12.8")) == []


def test_several_mismatches_are_all_reported():
    other = Machine("11.0.0.114", "13.0", "NVIDIA H100 80GB HBM3", "9.0")
    kinds = [m.kind for m in check_provenance(_engine(), other)]
    assert kinds == [MismatchKind.TENSORRT, MismatchKind.CUDA, MismatchKind.COMPUTE_CAPABILITY]


@pytest.mark.parametrize(("built", "running", "plain", "compatible"), [
    ("10.3.0.30", "10.3.0.30", True, True),
    ("10.3.0.30", "10.7.0.23", False, True),   # later release of the same major
    ("10.7.0.23", "10.3.0.30", False, False),  # never an older runtime
    ("10.3.0.30", "11.0.0.114", False, True),  # 10.x version-compatible plans run on 11.x
    ("11.0.0.114", "11.4.0.106", False, True),
    ("11.4.0.106", "10.16.1.11", False, False),
    ("10.3.0", "10.3.0.30", True, True),  # the same release: major.minor.patch, the build number aside
    ("10.3.0.26", "10.3.0.30", True, True),
])
def test_tensorrt_version_rules(built, running, plain, compatible):
    assert tensorrt_can_run(built=built, running=running, version_compatible=False) is plain
    assert tensorrt_can_run(built=built, running=running, version_compatible=True) is compatible


def test_version_compatible_engine_runs_on_a_later_tensorrt():
    engine = _engine(version_compatible=True)
    assert check_provenance(engine, dataclasses.replace(ORIN, tensorrt_version="10.7.0.23")) == []
    assert "--version-compatible" in rebuild_command("b", engine)


def test_rebuild_command_carries_graph_dims_and_dla():
    engine = _engine(graph="prompt_decoder", precision=Precision.FP32, dla_core=0,
                     profile={"cameras": [1, 2, 4], "points": [1, 4, 16]})
    cmd = rebuild_command("my bundle", engine)
    assert cmd == ("vitdeploy build 'my bundle' --graph prompt_decoder --min-cameras 1 --opt-cameras 2 "
                   "--max-cameras 4 --dim points=1:4:16 --dla-core 0")


def test_engine_record_round_trips_through_the_manifest():
    g = Graph(name="model", inputs=[TensorSpec("images", "float32", ["cameras", 3, 64, 96])],
              outputs=[TensorSpec("logits", "float32", ["cameras", 10, 7])])
    m = Manifest(model="m", head=HeadSpec("detr"), parameters=1, image_size=(64, 96), patch_size=16, max_cameras=6, opset=18,
                 preprocessing=Preprocessing(image_size=(64, 96)), graphs=[g],
                 engines=[_engine(status=Status.FAILED, dla_core=1, version_compatible=True, sm_count=16,
                                  gpu_memory_mib=62464, dla_layers=0,
                                  golden={"passed": False, "cases": {"cameras=1": {}}},
                                  options={"workspace_gb": 2.0})])
    again = Manifest.from_json(m.to_json())
    assert again == m
    assert again.engines[0].dla_core == 1 and again.engines[0].status is Status.FAILED
    assert again.engines[0].sm_count == 16 and again.engines[0].gpu_memory_mib == 62464


# ---- Jetson modules: every Orin says "Orin", sm 8.7 -------------------------------------------------
AGX_ORIN_64 = dataclasses.replace(ORIN, sm_count=16, memory_mib=62464)
ORIN_NX_16 = dataclasses.replace(ORIN, sm_count=8, memory_mib=15360)
ORIN_NX_8 = dataclasses.replace(ORIN, sm_count=8, memory_mib=7168)


def _built_on(machine: Machine) -> Engine:
    return _engine(sm_count=machine.sm_count, gpu_memory_mib=machine.memory_mib)


def test_an_agx_orin_plan_is_refused_on_an_orin_nx_with_both_modules_named():
    [m] = check_provenance(_built_on(AGX_ORIN_64), ORIN_NX_16)
    assert m.kind is MismatchKind.GPU_MODULE
    with pytest.raises(EngineMismatchError) as info:
        ensure_runnable(_built_on(AGX_ORIN_64), ORIN_NX_16, bundle_path="b")
    message = str(info.value)
    assert "Orin (sm 8.7, 16 SMs, 61.0 GiB)" in message and "Orin (sm 8.7, 8 SMs, 15.0 GiB)" in message
    assert "AGX Orin plan on an Orin NX" in message and "vitdeploy build b --fp16" in message


def test_same_sm_count_but_other_memory_is_another_module():
    assert [m.kind for m in check_provenance(_built_on(ORIN_NX_16), ORIN_NX_8)] == [MismatchKind.GPU_MODULE]


def test_a_few_per_cent_of_memory_is_the_same_module():
    carveout = dataclasses.replace(AGX_ORIN_64, memory_mib=62464 - 2000)  # another JetPack's reservations
    assert check_provenance(_built_on(AGX_ORIN_64), carveout) == []


def test_records_from_before_sm_count_and_memory_are_judged_on_the_rest():
    assert check_provenance(_engine(), ORIN_NX_16) == []
    assert check_provenance(_built_on(AGX_ORIN_64), ORIN) == []
