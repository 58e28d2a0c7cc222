"""What a DLA engine needs, checked before anything is built, and what landed on the DLA after.

From NVIDIA's TensorRT documentation ("Working with DLA", "DLA Supported Layers and Restrictions",
"Strongly Typed Networks for DLA", the 11.4.1 release notes) and trtexec's ``sampleOptions.cpp``:

* DLA has no dynamic dimensions: every profile's min, opt and max must be equal (otherwise
  TensorRT logs "DLA requests all profiles have same min, max, and opt value" and moves every
  DLA layer to the GPU). A DLA engine is built for one camera count.
* DLA computes in FP16 and INT8 only; an FP32 graph has nothing DLA can run.
* vitdeploy builds strongly typed networks only (DESIGN.md decision 1). Strongly typed networks on
  DLA are documented from TensorRT 11.4.1, on Jetson AGX Orin with JetPack 7.2.2 or later. 10.7 was
  the last 10.x release with DLA (and built it from the precision flags vitdeploy does not use),
  11.0 to 11.3 have no DLA, 11.4.0 only on Windows on ARM; Jetson Thor and DRIVE Thor have no DLA.
* With GPU fallback, layers DLA cannot run move to the GPU without an error, so after the build
  the engine inspector says how many layers run on the DLA; an engine with none is marked failed.
* trtexec disables CUDA graphs when ``--useDLACore`` is given ("CUDA graphs and DLA offloading are
  not simultaneously supported"); the tensorrt backend refuses the combination up front.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from vitdeploy.bundle.manifest import Precision
from vitdeploy.errors import BackendError
from vitdeploy.tensorrt.errors import BuildError
from vitdeploy.tensorrt.provenance import tensorrt_release

#: The first TensorRT release that documents strongly typed networks on DLA (Jetson AGX Orin, JetPack 7.2.2+).
DLA_STRONGLY_TYPED_FROM = (11, 4, 1)
WHAT_WORKS = ("DLA engines need TensorRT 11.4.1 or later on a Jetson AGX Orin with JetPack 7.2.2 or later; "
              "elsewhere build for the GPU (drop --dla-core)")
CUDA_GRAPHS_WITH_DLA = ("CUDA graphs and DLA offloading are not simultaneously supported (TensorRT's trtexec "
                        "turns CUDA graphs off with --useDLACore)")
# What TensorRT's builder logs when nothing stays on the DLA (seen in NVIDIA's forums and issues).
_NOTHING_ON_DLA = ("no layer in the network can run on dla", "all dla layers are falling back to gpu")


def check_dla_request(*, dla_core: int | None, precision: Precision, tensorrt_version: str | None = None,
                      generation: int | None = None) -> None:
    """Refuse a DLA build that cannot work, saying what would: FP32, a TensorRT release that does not
    document strongly typed DLA builds. ``tensorrt_version`` (the installed one) or ``generation``
    (10 or 11, for a trtexec line) says which TensorRT; neither: only the precision is checked."""
    if dla_core is None:
        return
    if precision is Precision.FP32:
        raise BuildError(f"--dla-core {dla_core} with fp32: DLA runs FP16 and INT8 only; build --fp16 or --int8 for "
                         f"the DLA, or fp32 on the GPU (drop --dla-core)")
    if tensorrt_version is not None and tensorrt_release(tensorrt_version) < DLA_STRONGLY_TYPED_FROM:
        raise BuildError(f"--dla-core with TensorRT {tensorrt_version}: strongly typed networks (the only kind "
                         f"vitdeploy builds) on DLA are documented from TensorRT 11.4.1; 10.7 was the last 10.x "
                         f"release with DLA, 11.0-11.3 have none, 11.4.0 only on Windows on ARM. {WHAT_WORKS}")
    if generation is not None and generation < DLA_STRONGLY_TYPED_FROM[0]:
        raise BuildError(f"--dla-core for TensorRT {generation}.x: no {generation}.x release documents strongly "
                         f"typed networks on DLA (10.7 was the last 10.x with DLA). {WHAT_WORKS}")


def check_dla_cores(*, dla_core: int, available: int, gpu_name: str) -> None:
    """Refuse a DLA core the GPU does not have (Thor, Orin Nano and discrete GPUs have none)."""
    if available == 0:
        raise BuildError(f"--dla-core {dla_core}: {gpu_name} has no DLA (Jetson Thor, DRIVE Thor, Orin Nano and "
                         f"discrete GPUs have none). {WHAT_WORKS}")
    if dla_core >= available:
        raise BuildError(f"--dla-core {dla_core} asked for, {gpu_name} has {available} DLA core(s) "
                         f"(0..{available - 1})")


def check_cuda_graphs(*, dla_core: int | None, cuda_graphs: bool, engine: str) -> None:
    """Refuse CUDA graphs for an engine that runs on a DLA core."""
    if cuda_graphs and dla_core is not None:
        raise BackendError(f"tensorrt: {engine} runs on DLA core {dla_core}: {CUDA_GRAPHS_WITH_DLA}; run it "
                           f"without CUDA graphs (cuda_graphs=False), or build a GPU engine for CUDA graphs")


@dataclass(frozen=True)
class LayerPlacement:
    """Where the layers of a built engine run. ``dla`` counts layers the engine inspector reports
    on the DLA; ``said_none`` is the builder's own word that nothing stayed there."""

    dla: int
    total: int
    said_none: bool = False

    @property
    def on_dla(self) -> bool:
        return self.dla > 0 and not self.said_none

    def summary(self) -> str:
        if self.said_none:
            return f"no layer runs on the DLA (TensorRT moved all {self.total} to the GPU)"
        return f"{self.dla} of {self.total} layers on the DLA"


def _is_dla_layer(layer: object) -> bool:
    """A layer record of the engine inspector that runs on the DLA. With detailed profiling
    verbosity TensorRT gives each layer a ``LayerType``; a DLA subgraph's says DLA. (The exact form
    is not in NVIDIA's documentation: one of the checks the ``tensorrt``-marked tests must confirm
    on an Orin.)"""
    if isinstance(layer, dict):
        return "dla" in str(layer.get("LayerType", "")).lower()
    return False


def layer_placement(engine_information: str, builder_warnings: list[str] = ()) -> LayerPlacement:
    """Count the DLA layers in ``engine_information`` (``EngineInspector.get_engine_information``
    with ``LayerInformationFormat.JSON``: ``{"Layers": [...], "Bindings": [...]}``)."""
    try:
        layers = json.loads(engine_information).get("Layers", [])
    except (ValueError, AttributeError):
        layers = []
    said_none = any(marker in w.lower() for w in builder_warnings for marker in _NOTHING_ON_DLA)
    return LayerPlacement(dla=sum(_is_dla_layer(layer) for layer in layers), total=len(layers), said_none=said_none)
