"""`vitdeploy build`: a bundle's ONNX at one precision -> a checked TensorRT plan in the bundle.

For each graph: (calibrate first if the precision's ONNX is missing and data is given), make the
golden outputs if the bundle has none, build a strongly typed plan with one profile over the
camera axis, run it on the golden inputs at the profile's smallest and largest camera count,
and only then rename ``<graph>.<precision>.<gpu>.plan`` into place and record the engine, its
provenance and its golden agreement in the manifest. An engine beyond its precision's tolerance
is kept and marked failed (the tensorrt backend refuses it).

TensorRT, pycuda and a GPU are checked for before anything is written, so without them the
bundle is left exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitdeploy.bundle import Bundle, Engine, Precision, Status, atomic_path, sha256_file
from vitdeploy.bundle.manifest import Graph
from vitdeploy.errors import MissingDependencyError
from vitdeploy.tensorrt.compat import (
    device_index,
    import_cuda,
    import_tensorrt,
    open_device,
    probe_machine,
    recording_logger,
    tensorrt_major,
)
from vitdeploy.tensorrt.errors import BuildError
from vitdeploy.tensorrt.golden import GoldenReport, GoldenSet, check_engine, ensure_golden
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


@dataclass
class EngineResult:
    engine: Engine
    plan_path: Path
    golden: GoldenReport

    @property
    def passed(self) -> bool:
        return self.engine.status is Status.GOOD


def plan_targets(bundle: Bundle, options: BuildOptions) -> list[tuple[Graph, Profile]]:
    """The graphs to build and their profiles, validated; touches nothing."""
    graphs = [bundle.manifest.graph(options.graph)] if options.graph else list(bundle.manifest.graphs)
    axes = {d for g in graphs for s in g.inputs for d in s.dynamic_axes.values()}
    unknown = sorted(set(options.dims) - axes)
    if unknown:
        raise BuildError(f"--dim {', '.join(unknown)}: no such dynamic axis in graph(s) "
                         f"{[g.name for g in graphs]} (they have {sorted(axes)})")
    return [(g, camera_profile(bundle.manifest, g, min_cameras=options.min_cameras, opt_cameras=options.opt_cameras,
                               max_cameras=options.max_cameras, other_dims=options.dims)) for g in graphs]


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
    commands = []
    for graph, profile in targets:
        onnx = bundle.onnx_path(options.precision, graph.name)
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
    cuda = import_cuda()
    index = device_index(device)
    # The device's context stays current while building: TensorRT builds on the current device.
    context = open_device(cuda, index)
    try:
        machine = probe_machine(trt, cuda, index)
        bundle = _ensure_variants(bundle, options, [g for g, _ in targets], say)
        results = []
        for graph, profile in targets:
            graph = bundle.manifest.graph(graph.name)  # re-read: calibration may have added the variant
            results.append(_build_one(trt, bundle, graph, profile, machine, options, device=index, say=say))
        return results
    finally:
        cuda.Context.pop()
        context.detach()


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
    if variant.status is not Status.GOOD:
        raise BuildError(f"the {p.value} ONNX of graph {graph.name!r} is marked {variant.status.value} (it did not "
                         f"agree with FP32 well enough when it was made); recalibrate it with `vitdeploy calibrate "
                         f"{bundle.path} --precision {p.value}` before building an engine from it")
    onnx_path = bundle.onnx_path(p, graph.name)
    onnx_sha = sha256_file(onnx_path)
    if onnx_sha != variant.sha256:
        raise BuildError(f"{onnx_path.name} changed since the manifest recorded it (sha256 {onnx_sha[:12]}..., "
                         f"recorded {variant.sha256[:12]}...); re-export or recalibrate the bundle")
    golden = ensure_golden(bundle, graph, dims={k: tuple(v) for k, v in profile.to_record().items()}, say=say)

    say(f"building {graph.name} at {p.value} for {machine.gpu_name} (TensorRT {machine.tensorrt_version})")
    logger = recording_logger(trt)
    start = time.perf_counter()
    plan = build_plan(trt, onnx_path=onnx_path, graph=graph, profile=profile, precision=p, settings=settings,
                      logger=logger)
    seconds = time.perf_counter() - start
    name = plan_file_name(graph.name, p, machine.gpu_slug, dla_core=settings.dla_core)
    engine = Engine(
        file=name, graph=graph.name, precision=p, tensorrt_version=machine.tensorrt_version,
        cuda_version=machine.cuda_version, gpu_name=machine.gpu_name, compute_capability=machine.compute_capability,
        profile=profile.to_record(), onnx_sha256=onnx_sha, plan_sha256=hashlib.sha256(plan).hexdigest(),
        build_seconds=round(seconds, 2), built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        options=settings.to_record(), onnx_file=variant.file, version_compatible=settings.version_compatible,
        dla_core=settings.dla_core,
    )
    with atomic_path(bundle.file(name)) as tmp:
        tmp.write_bytes(plan)
        say(f"checking {name} against the golden outputs")
        report = _golden_check(tmp, engine, graph, golden, profile, bundle=bundle, device=device)
    engine.status = Status.GOOD if report.passed else Status.FAILED
    engine.golden = report.to_record()
    bundle.manifest.engines = [e for e in bundle.manifest.engines if e.file != name] + [engine]
    bundle.save()
    return EngineResult(engine=engine, plan_path=bundle.file(name), golden=report)


def _golden_check(plan_path: Path, engine: Engine, graph: Graph, golden: GoldenSet, profile: Profile, *,
                  bundle: Bundle, device: int) -> GoldenReport:
    from vitdeploy.tensorrt.runner import TensorRTBackend

    cams = profile.cameras
    counts = [golden.cameras] if cams is None else [c for c in (cams.min, cams.max) if c <= golden.cameras]
    with TensorRTBackend(plan_path, engine=engine, inputs=graph.inputs, outputs=graph.outputs, device=device,
                         bundle_path=bundle.path) as backend:
        dtypes = {s.name: np.dtype(s.dtype) for s in backend.inputs}

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return backend.infer({k: v.astype(dtypes[k], copy=False) for k, v in feeds.items()})

        return check_engine(run, golden, graph, precision=engine.precision, camera_counts=counts)
