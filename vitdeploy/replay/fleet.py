"""``replay``: a bundle over many recordings at several precisions, on Ray or in this process.

The library function behind `vitdeploy replay`. It finds the recordings, skips those whose
outputs are complete from an earlier replay with the same bundle files and settings, replays
the rest — on Ray (a local Ray by default, a cluster by address) or, with ``workers=0``, in this
process — and writes the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vitdeploy.bundle import Bundle, Precision, ensure_writable_dir, sha256_file
from vitdeploy.errors import DataError
from vitdeploy.extras import Extra, require
from vitdeploy.heads.agreement import PREDICTION_SCORE
from vitdeploy.replay.recording_run import (
    RecordingResult,
    ReplaySettings,
    clean_staging,
    completed,
    open_backends,
    replay_recording,
)
from vitdeploy.replay.recordings import Recording, find_recordings
from vitdeploy.replay.report import ReplayReport, write_report
from vitdeploy.replay.summary import REFERENCE


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay; the defaults are `vitdeploy replay`'s.

    ``out``: the output folder. ``precisions``: those to replay (FP32, the reference, is always
    replayed, first; empty: FP32 and every precision the bundle has). ``backend``/``device``: as in
    `vitdeploy run`. ``score_threshold`` (0..1): detections kept in the JSONL; the default is the
    agreement's prediction floor, so agreement figures are calibration's. ``workers``: Ray worker
    actors (None: the machine's cores, or the cluster's CPUs; 0: no Ray, one after the other in
    this process). ``address``: a Ray cluster to join (None: ``RAY_ADDRESS``, else a local Ray).
    ``gpus_per_worker``/``cpus_per_worker``: each worker's Ray resources. ``max_retries``: restarts
    of a worker that died and retries of its recording. ``lowest``: recordings of lowest
    agreement the report lists. ``quiet``: no Ray worker logs on the terminal.
    """

    out: str | Path
    precisions: tuple[Precision, ...] = ()
    backend: str = "onnxruntime"
    device: str | None = None
    score_threshold: float = PREDICTION_SCORE
    top_k: int = 100
    allow_rejected: bool = False
    workers: int | None = None
    address: str | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    max_retries: int = 2
    lowest: int = 10
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 0:
            raise DataError(f"workers must be 0 (in this process) or more, got {self.workers}")
        if not 0 <= self.score_threshold <= 1:
            raise DataError(f"score_threshold must be in 0..1, got {self.score_threshold}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0 or self.max_retries < 0 or self.lowest < 1:
            raise DataError("gpus_per_worker >= 0, cpus_per_worker > 0, max_retries >= 0 and lowest >= 1 are needed")
        if self.workers == 0 and self.address:
            raise DataError("workers=0 replays in this process; an address is for Ray: give one or the other")


def replay(bundle: Bundle | str | Path, recordings: Iterable[Recording] | str | Path | Iterable[str | Path], *,
           options: ReplayOptions, on_result: Callable[[RecordingResult], None] | None = None) -> ReplayReport:
    """Replay ``bundle`` over ``recordings`` (``Recording`` objects, or what ``--data`` takes: a
    glob, folder, file or list file, or several) as ``options`` say; write and return the report.

    ``on_result`` is called with each recording's result as it comes (progress displays),
    reused ones first. A failed recording is in the report with its reason; errors that concern
    the whole replay (no bundle, a precision it lacks, no recordings, Ray not installed) raise.
    """
    started = time.monotonic()
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    found = _recordings(recordings)
    settings = replay_settings(bundle, options)
    ensure_writable_dir(settings.out)
    clean_staging(settings.out)
    results: dict[str, RecordingResult] = {}
    todo = []
    for recording in found:
        done = completed(recording, settings)
        if done is None:
            todo.append(recording)
            continue
        results[recording.id] = done
        if on_result is not None:
            on_result(done)
    scheduler = "in this process"
    if todo and options.workers == 0:
        for r in _in_process(todo, bundle=bundle, settings=settings, on_result=on_result):
            results[r.recording.id] = r
    elif todo:
        require(Extra.REPLAY, needed_by="`vitdeploy replay` on Ray (--workers 0 replays in this process without it)")
        from vitdeploy.replay.cluster import RayOptions, replay_on_ray

        ray_options = RayOptions(address=options.address, workers=options.workers,
                                 cpus_per_worker=options.cpus_per_worker, gpus_per_worker=options.gpus_per_worker,
                                 max_retries=options.max_retries, quiet=options.quiet)
        for r in replay_on_ray(todo, bundle=bundle.path.resolve(), settings=settings, options=ray_options,
                               on_result=on_result):
            results[r.recording.id] = r
        scheduler = "on Ray" + (f" at {options.address}" if options.address else " (local)")
    clean_staging(settings.out)
    report = ReplayReport(bundle={"path": str(bundle.path.resolve()), "model": bundle.manifest.model,
                                  "files": settings.files},
                          settings={"precisions": [p.value for p in settings.precisions], "backend": settings.backend,
                                    "device": settings.device, "score_threshold": settings.score_threshold,
                                    "top_k": settings.top_k, "workers": options.workers},
                          results=[results[r.id] for r in found], seconds=time.monotonic() - started,
                          scheduler=scheduler, lowest=options.lowest)
    write_report(report, settings.out)
    return report


def replay_settings(bundle: Bundle, options: ReplayOptions) -> ReplaySettings:
    """The settings every worker gets: the precisions (FP32 first), and the sha256 of the files
    each precision runs (checked now: a precision the bundle lacks is an error before any work)."""
    asked = list(options.precisions) or [v.precision for g in bundle.manifest.graphs[:1] for v in g.variants]
    precisions = tuple(dict.fromkeys([REFERENCE, *(Precision.parse(p) for p in asked)]))
    files: dict[str, dict[str, str]] = {}
    for p in precisions:
        used = {}
        if options.backend == "tensorrt":
            used.update({e.file: e.plan_sha256 for e in bundle.manifest.engines if e.precision == p})
        else:
            path = bundle.onnx_path(p, allow_rejected=options.allow_rejected)
            used[path.name] = sha256_file(path)
        files[p.value] = used
    return ReplaySettings(out=Path(options.out).resolve(), precisions=precisions, backend=options.backend,
                          device=options.device, score_threshold=options.score_threshold, top_k=options.top_k,
                          allow_rejected=options.allow_rejected, files=files)


def _recordings(recordings) -> list[Recording]:
    items = [recordings] if isinstance(recordings, (str, Path)) else list(recordings)
    if items and all(isinstance(r, Recording) for r in items):
        ids = [r.id for r in items]
        if len(set(ids)) != len(ids):
            raise DataError(f"recording ids must be unique; repeated: {sorted({i for i in ids if ids.count(i) > 1})}")
        return items
    return find_recordings(items)


def _in_process(recordings: list[Recording], *, bundle: Bundle, settings: ReplaySettings,
                on_result: Callable[[RecordingResult], None] | None) -> list[RecordingResult]:
    """One recording after the other in this process, with one backend per precision for all."""
    backends = open_backends(bundle, settings)
    results = []
    try:
        for recording in recordings:
            result = replay_recording(recording, bundle=bundle, settings=settings, backends=backends)
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        for backend in backends.values():
            backend.close()
    return results
