"""The trtexec command line that builds the same engine as `vitdeploy build`, per TensorRT generation.

For people who build on the target with NVIDIA's own tool, or want to compare. Both generations
build a strongly typed network from the bundle's ONNX, so no precision flag appears: precision is
in the graph (DESIGN.md decision 1). On 10.x ``--stronglyTyped`` asks for that; 11.x removed the
precision flags and is always strongly typed, so the flag is left out there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from vitdeploy.bundle.manifest import Graph, Precision
from vitdeploy.tensorrt.errors import BuildError
from vitdeploy.tensorrt.profile import Profile, Shape

GENERATIONS = (10, 11)


@dataclass(frozen=True)
class BuilderSettings:
    """What `vitdeploy build` sets on TensorRT's builder config besides the profile."""

    workspace_gb: float = 4.0
    timing_cache: Path | None = None
    builder_opt_level: int | None = None  # None: TensorRT's default (3)
    dla_core: int | None = None
    version_compatible: bool = False

    def __post_init__(self):
        if not self.workspace_gb > 0:
            raise BuildError(f"--workspace-gb {self.workspace_gb} must be more than 0")
        if self.builder_opt_level is not None and not 0 <= self.builder_opt_level <= 5:
            raise BuildError(f"--builder-opt-level {self.builder_opt_level} is outside TensorRT's 0..5")
        if self.dla_core is not None and self.dla_core < 0:
            raise BuildError(f"--dla-core {self.dla_core} must be 0 or more")

    @property
    def workspace_bytes(self) -> int:
        return int(self.workspace_gb * (1 << 30))

    def to_record(self) -> dict:
        return {"workspace_gb": self.workspace_gb, "builder_opt_level": self.builder_opt_level,
                "timing_cache": str(self.timing_cache) if self.timing_cache else None}


def _shape_list(shapes: dict[str, tuple[Shape, Shape, Shape]], which: int) -> str:
    # trtexec reads name:AxBxC pairs separated by commas; a name with ':' or ',' needs quoting there
    return ",".join(f"{_quote_tensor(name)}:{'x'.join(str(d) for d in s[which])}" for name, s in shapes.items())


def _quote_tensor(name: str) -> str:
    return f"'{name}'" if any(c in name for c in ":,") else name


def trtexec_argv(*, onnx: str | Path, plan: str | Path, graph: Graph, precision: Precision, profile: Profile,
                 settings: BuilderSettings, generation: int) -> list[str]:
    """The argv of ``trtexec`` for TensorRT ``generation`` (10 or 11)."""
    if generation not in GENERATIONS:
        raise BuildError(f"TensorRT {generation}.x has no trtexec line here; choose one of {list(GENERATIONS)}")
    argv = ["trtexec", f"--onnx={onnx}", f"--saveEngine={plan}", "--skipInference"]
    if generation == 10:
        argv.append("--stronglyTyped")
    if precision is Precision.FP32:
        argv.append("--noTF32")  # FP32 engines are the exact reference, as in `vitdeploy build`
    shapes = profile.input_shapes(graph)
    if shapes:
        argv += [f"--minShapes={_shape_list(shapes, 0)}", f"--optShapes={_shape_list(shapes, 1)}",
                 f"--maxShapes={_shape_list(shapes, 2)}"]
    argv.append(f"--memPoolSize=workspace:{max(1, round(settings.workspace_gb * 1024))}")  # MiB
    if settings.timing_cache is not None:
        argv.append(f"--timingCacheFile={settings.timing_cache}")
    if settings.builder_opt_level is not None:
        argv.append(f"--builderOptimizationLevel={settings.builder_opt_level}")
    if settings.dla_core is not None:
        # the profile is static for DLA (min = opt = max); detailed layer information shows which
        # layers stayed on the DLA (trtexec --dumpLayerInfo), as `vitdeploy build` checks
        argv += [f"--useDLACore={settings.dla_core}", "--allowGPUFallback", "--profilingVerbosity=detailed"]
    if settings.version_compatible:
        argv.append("--versionCompatible")
    return argv


def format_command(argv: list[str]) -> str:
    """One shell command, an option per line, ready to paste."""
    return " \\\n    ".join(shlex.quote(a) for a in argv)
