"""`vitdeploy build`: a bundle's ONNX at one precision -> a checked TensorRT plan in the bundle.

For each graph: (calibrate first if the precision's ONNX is missing and data is given), make the
golden outputs if the bundle has none, build a strongly typed plan with one profile over the
camera axis, run it on the golden inputs in batches of the profile's smallest and largest camera
count, and only then rename ``<graph>.<precision>.<gpu>.plan`` into place and record the engine, its
provenance and its golden agreement in the manifest. An engine beyond its precision's tolerance
is kept and marked failed (the tensorrt backend refuses it).

TensorRT, a CUDA layer (pycuda or cuda-python) and a GPU are checked for before anything is
written, so without them the bundle is left exactly as it was. A DLA engine gets a static profile,
is refused at FP32 and on TensorRT releases that do not document strongly typed DLA builds, and is
marked failed when the engine inspector finds none of its layers on the DLA (``dla``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitdeploy.bundle import Bundle, Engine, Precision, Status, atomic_path, sha256_file, variant_verdict
from vitdeploy.bundle.manifest import Graph
from vitdeploy.errors import MissingDependencyError
from vitdeploy.extras import Extra, require
from vitdeploy.tensorrt.agreement import GoldenReport, check_engine, task_check_for
from vitdeploy.tensorrt.compat import (
    device_index,
    import_tensorrt,
    probe_machine,
    recording_logger,
    tensorrt_major,
)
from vitdeploy.tensorrt.cuda import open_gpu
from vitdeploy.tensorrt.dla import LayerPlacement, check_dla_request, layer_placement
from vitdeploy.tensorrt.errors import BuildError
from vitdeploy.tensorrt.golden import GoldenSet, ensure_golden
from vitdeploy.tensorrt.profile import DimRange, Profile, camera_profile
from vitdeploy.tensorrt.provenance import Machine, plan_file_name
from vitdeploy.tensorrt.trtexec import BuilderSettings, format_command, trtexec_argv

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildOptions:
    """What to build. ``graph`` None builds every graph of the bundle; ``dims`` gives the range of
    dynamic axes other than the cameras (the SAM decoder's ``points``)."""

    precision: Precision = Precision.FP32
    graph: str | None = None
    min_cameras: int | None = None
    opt_cameras: int | None = None
    max_cameras: int | None = None
    dims: dict[str, DimRange] = field(default_factory=dict)
    settings: BuilderSettings = field(default_factory=BuilderSettings)
    calib_data: Path | None = None
    #: build from an ONNX that calibration rejected (the user's --allow-rejected; recorded in the
    #: engine's options)
    allow_rejected: bool = False


@dataclass
class EngineResult:
    engine: Engine
    plan_path: Path
    golden: GoldenReport
    placement: LayerPlacement | None = None  # DLA engines: where the layers run

    @property
    def passed(self) -> bool:
        return self.engine.status is Status.GOOD


def plan_targets(bundle: Bundle, options: BuildOptions) -> list[tuple[Graph, Profile]]:
    """The graphs to build and their profiles, validated; touches nothing. A DLA build gets a
    static profile (``dla`` module docstring) and is refused at FP32."""
    dla_core = options.settings.dla_core
    check_dla_request(dla_core=dla_core, precision=options.precision)
    graphs = [bundle.manifest.graph(options.graph)] if options.graph else list(bundle.manifest.graphs)
    axes = {d for g in graphs for s in g.inputs for d in s.dynamic_axes.values()}
    unknown = sorted(set(options.dims) - axes)
    if unknown:
        raise BuildError(f"--dim {', '.join(unknown)}: no such dynamic axis in graph(s) "
                         f"{[g.name for g in graphs]} (they have {sorted(axes)})")
    return [(g, camera_profile(bundle.manifest, g, min_cameras=options.min_cameras, opt_cameras=options.opt_cameras,
                               max_cameras=options.max_cameras, other_dims=options.dims,
                               static=dla_core is not None)) for g in graphs]


def trtexec_commands(bundle_path: str | Path, options: BuildOptions, *, generation: int | None = None) -> list[str]:
    """The trtexec command per graph for TensorRT ``generation`` (default: the installed one).
    Needs neither TensorRT (when ``generation`` is given) nor a GPU; builds nothing."""
    bundle = Bundle.open(bundle_path)
    targets = plan_targets(bundle, options)
    if generation is None:
        try:
            generation = tensorrt_major(import_tensorrt().__version__)
        except MissingDependencyError as exc:
            raise BuildError(f"no TensorRT here to take the generation from ({exc}); "
                             f"say which with --trt-version 10 or 11") from exc
    check_dla_request(dla_core=options.settings.dla_core, precision=options.precision, generation=generation)
    commands = []
    for graph, profile in targets:
        onnx = bundle.onnx_path(options.precision, graph.name, allow_rejected=options.allow_rejected)
        plan = bundle.path / f"{graph.name}.{options.precision.value}.plan"
        commands.append(format_command(trtexec_argv(onnx=onnx, plan=plan, graph=graph, precision=options.precision,
                                                    profile=profile, settings=options.settings,
                                                    generation=generation)))
    return commands


def build_engines(bundle_path: str | Path, options: BuildOptions, *, device: str | int = "cuda",
                  progress: Progress | None = None) -> list[EngineResult]:
    """Build, check and record one engine per target graph; see the module docstring."""
    say = progress or (lambda _msg: None)
    bundle = Bundle.open(bundle_path)
    targets = plan_targets(bundle, options)
    trt = import_tensorrt()
    check_dla_request(dla_core=options.settings.dla_core, precision=options.precision,
                      tensorrt_version=trt.__version__)
    # before the build: the golden check after it preprocesses photographs with OpenCV
    require(Extra.OPENCV, needed_by="the golden check of `vitdeploy build`")
    index = device_index(device)
    gpu = open_gpu(index)
    try:
        # The device stays current while building: TensorRT builds on the current device.
        with gpu.current():
            machine = probe_machine(trt, gpu)
            bundle = _ensure_variants(bundle, options, [g for g, _ in targets], say)
            results = []
            for graph, profile in targets:
                graph = bundle.manifest.graph(graph.name)  # re-read: calibration may have added the variant
                results.append(_build_one(trt, bundle, graph, profile, machine, options, device=index, say=say))
            return results
    finally:
        gpu.close()


def _ensure_variants(bundle: Bundle, options: BuildOptions, graphs: list[Graph], say: Progress) -> Bundle:
    p = options.precision
    missing = [g.name for g in graphs if g.variant(p) is None]
    if not missing:
        return bundle
    if options.calib_data is None:
        raise BuildError(f"bundle {bundle.path} has no {p.value} ONNX for {missing}; make it with `vitdeploy calibrate "
                         f"{bundle.path} --precision {p.value}`, or give --calib-data to calibrate first")
    try:
        from vitdeploy.calibration import calibrate_bundle
    except ImportError as exc:
        raise BuildError(f"this vitdeploy cannot calibrate ({exc}); make the {p.value} ONNX with "
                         f"`vitdeploy calibrate` first") from exc
    say(f"calibrating {p.value} on {options.calib_data}")
    calibrate_bundle(bundle.path, precision=p, data=options.calib_data)
    bundle = Bundle.open(bundle.path)
    still = [g.name for g in graphs if bundle.manifest.graph(g.name).variant(p) is None]
    if still:
        raise BuildError(f"calibration finished but the bundle still has no {p.value} ONNX for {still}")
    return bundle


def _build_one(trt, bundle: Bundle, graph: Graph, profile: Profile, machine: Machine, options: BuildOptions, *,
               device: int, say: Progress) -> EngineResult:
    from vitdeploy.tensorrt.builder import build_plan

    p = options.precision
    settings = options.settings
    variant = graph.variant(p)
    if variant.status is not Status.GOOD and not options.allow_rejected:
        raise BuildError(f"the {p.value} ONNX of graph {graph.name!r} is marked {variant.status.value} "
                         f"({variant_verdict(variant)}); recalibrate it with `vitdeploy calibrate {bundle.path} "
                         f"--precision {p.value}` before building an engine from it, or pass --allow-rejected")
    onnx_path = bundle.onnx_path(p, graph.name, allow_rejected=options.allow_rejected)
    onnx_sha = sha256_file(onnx_path)
    if onnx_sha != variant.sha256:
        raise BuildError(f"{onnx_path.name} changed since the manifest recorded it (sha256 {onnx_sha[:12]}..., "
                         f"recorded {variant.sha256[:12]}...); re-export or recalibrate the bundle")
    golden = ensure_golden(bundle, graph, dims={k: tuple(v) for k, v in profile.to_record().items()}, say=say)

    say(f"building {graph.name} at {p.value} for {machine.gpu_name} (TensorRT {machine.tensorrt_version})")
    logger = recording_logger(trt)
    start = time.perf_counter()
    plan = build_plan(trt, onnx_path=onnx_path, graph=graph, profile=profile, precision=p, settings=settings,
                      logger=logger, gpu_name=machine.gpu_name)
    seconds = time.perf_counter() - start
    name = plan_file_name(graph.name, p, machine.gpu_slug, dla_core=settings.dla_core)
    engine = Engine(
        file=name, graph=graph.name, precision=p, tensorrt_version=machine.tensorrt_version,
        cuda_version=machine.cuda_version, gpu_name=machine.gpu_name, compute_capability=machine.compute_capability,
        profile=profile.to_record(), onnx_sha256=onnx_sha, plan_sha256=hashlib.sha256(plan).hexdigest(),
        build_seconds=round(seconds, 2), built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        options={**settings.to_record(), **({"allow_rejected": variant.status.value}
                                             if variant.status is not Status.GOOD else {})},
        onnx_file=variant.file, version_compatible=settings.version_compatible,
        dla_core=settings.dla_core, sm_count=machine.sm_count, gpu_memory_mib=machine.memory_mib,
    )
    with atomic_path(bundle.file(name)) as tmp:
        tmp.write_bytes(plan)
        say(f"checking {name} against the golden outputs")
        report, placement = _golden_check(tmp, engine, graph, golden, profile, bundle=bundle, device=device,
                                          builder_warnings=logger.warnings())
    on_dla = placement is None or placement.on_dla
    engine.status = Status.GOOD if report.passed and on_dla else Status.FAILED
    engine.golden = report.to_record()
    if placement is not None:
        engine.dla_layers = placement.dla
        if not on_dla:  # recorded with the golden failures, which the backend quotes when it refuses
            engine.golden["failures"] = [f"DLA core {settings.dla_core}: {placement.summary()}"]
    bundle.manifest.engines = [e for e in bundle.manifest.engines if e.file != name] + [engine]
    bundle.save()
    return EngineResult(engine=engine, plan_path=bundle.file(name), golden=report, placement=placement)


def _golden_check(plan_path: Path, engine: Engine, graph: Graph, golden: GoldenSet, profile: Profile, *,
                  bundle: Bundle, device: int,
                  builder_warnings: list[str]) -> tuple[GoldenReport, LayerPlacement | None]:
    """The engine against the golden outputs (element-wise and, where the head has one, at the
    task level), and for a DLA engine where its layers run."""
    from vitdeploy.tensorrt.runner import TensorRTBackend

    cams = profile.cameras
    counts = [golden.frames] if cams is None else [cams.min, cams.max]
    with TensorRTBackend(plan_path, engine=engine, inputs=graph.inputs, outputs=graph.outputs, device=device,
                         bundle_path=bundle.path) as backend:
        dtypes = {s.name: np.dtype(s.dtype) for s in backend.inputs}

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return backend.infer({k: v.astype(dtypes[k], copy=False) for k, v in feeds.items()})

        report = check_engine(run, golden, graph, precision=engine.precision, camera_counts=counts,
                              task_check=task_check_for(bundle.manifest, graph))
        placement = None
        if engine.dla_core is not None:
            placement = layer_placement(backend.engine_information(), builder_warnings)
        return report, placement
