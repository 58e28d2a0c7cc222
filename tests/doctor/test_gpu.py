"""The GPU from nvidia-smi or the CUDA layer, TensorRT's version and which CUDA layer is in use."""

import pytest
from recorded import NVIDIA_SMI_TWO_GPUS, FakeSystem

from vitdeploy.doctor.gpu import GpuFacts, parse_nvidia_smi, probe_tensorrt, read_nvidia_smi
from vitdeploy.tensorrt.cuda import DeviceInfo


def test_nvidia_smi_lines():
    gpus = parse_nvidia_smi(NVIDIA_SMI_TWO_GPUS)
    assert gpus[0] == GpuFacts(name="NVIDIA H100 80GB HBM3", compute_capability="9.0", memory_mib=81559,
                               source="nvidia-smi", driver="550.54.15")
    assert gpus[1].name == "NVIDIA RTX 4000 Ada Generation" and gpus[1].compute_capability == "8.9"


def test_fields_nvidia_smi_cannot_tell_are_unknown():
    """An integrated GPU's nvidia-smi answers [N/A] for what it does not know (line made up in that form)."""
    (gpu,) = parse_nvidia_smi("Orin (nvgpu), [N/A], [N/A], 540.4.0\n")
    assert (gpu.name, gpu.compute_capability, gpu.memory_mib, gpu.driver) == ("Orin (nvgpu)", None, None, "540.4.0")


def test_nvidia_smi_missing_or_failing(tmp_path):
    assert read_nvidia_smi(FakeSystem(tmp_path)) == ([], "nvidia-smi is not on this machine")
    failing = FakeSystem(tmp_path, commands={"nvidia-smi": (9, "", "NVIDIA-SMI has failed because it couldn't "
                                                                     "communicate with the NVIDIA driver.\n")})
    gpus, note = read_nvidia_smi(failing)
    assert gpus == [] and "couldn't communicate with the NVIDIA driver" in note


def test_without_tensorrt_or_a_cuda_layer(no_tensorrt):
    facts, gpu = probe_tensorrt(open_gpu=True)
    assert facts.tensorrt is None and "not installed" in facts.tensorrt_note
    assert facts.cuda_layer.startswith("none (neither pycuda nor cuda-python")
    assert gpu is None


class _Layer:
    name = "cuda-python"
    info = DeviceInfo(index=0, name="Orin", compute_capability="8.7", sm_count=16, total_memory=64 << 30,
                      integrated=True, can_map_host_memory=True)
    closed = False

    def runtime_version(self):
        return "12.6"

    def library_version(self):
        return "12.6.2"

    def close(self):
        self.closed = True


@pytest.mark.parametrize("layer", ["cuda-python", "pycuda"])
def test_the_cuda_layer_in_use_and_its_gpu(monkeypatch, hide, layer):
    """Which layer is named comes from cuda_layer_in_use (VITDEPLOY_CUDA_LAYER chooses); the GPU from the layer."""
    import vitdeploy.tensorrt.cuda as cuda

    hide("tensorrt")
    monkeypatch.setenv("VITDEPLOY_CUDA_LAYER", layer)
    monkeypatch.setattr(cuda, "_installed", lambda _name: True)
    opened = _Layer()
    monkeypatch.setattr(cuda, "open_gpu", lambda index: opened)
    facts, gpu = probe_tensorrt(open_gpu=True)
    assert facts.cuda_layer == layer and facts.cuda_runtime == "12.6" and facts.cuda_layer_version == "12.6.2"
    assert gpu == GpuFacts(name="Orin", compute_capability="8.7", memory_mib=65536, source=layer, sm_count=16)
    assert opened.closed
    facts, gpu = probe_tensorrt(open_gpu=False)  # what bench asks: no GPU opened
    assert gpu is None and facts.cuda_runtime is None and facts.cuda_layer == layer
