"""Replay on Ray: long-lived worker actors, recordings as the units of work.

Each worker is a Ray actor that opens the bundle's backends once — one session per precision —
and then replays recording after recording with ``replay_recording``, the same plain function a
single process calls. The driver hands each idle worker the next recording and collects results
as they come (``ray.wait``), so one slow recording holds up no other.

Why plain actors and not Ray Data (``map_batches`` with an actor pool): a recording is a coarse
unit (seconds to minutes of video, a few files out, one small result back), so there are no rows
to stream, batch or spill, which is what Ray Data is for; the driver needs each recording's own
outcome (complete, failed with its reason, retried), where a Ray Data pipeline fails as a whole or
hides the failed rows; and ``ray[data]`` would add pyarrow and pandas to the install for nothing.
Fault tolerance is Ray's: an actor whose process dies is restarted (``max_restarts``) and the
recording it was replaying is retried on it (``max_task_retries``); a retry starts the recording
anew (its staging folder is discarded), so the result is the same.

Ray is the optional ``replay`` extra; this module imports it at the top and is itself imported
only when a replay runs on Ray.
"""

from __future__ import annotations

import collections
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.exceptions import RayError

from vitdeploy.bundle import Bundle
from vitdeploy.errors import DataError
from vitdeploy.replay.recording_run import RecordingResult, ReplaySettings, open_backends, replay_recording
from vitdeploy.replay.recordings import Recording

#: Object store of a Ray the replay starts: results are small dicts, frames never leave a worker.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run. ``address``: a cluster to join (None: ``RAY_ADDRESS`` if set,
    else a local Ray started and stopped here); ``workers``: worker actors (None: the local
    machine's cores, or the cluster's CPUs / ``cpus_per_worker``); ``gpus_per_worker`` (fractions
    share a GPU); ``max_retries``: restarts of a dead worker and retries of its recording;
    ``quiet``: no Ray logs from the workers on this terminal."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_retries: int = 2
    quiet: bool = False


class ReplayWorker:
    """A Ray actor: the bundle's backends, opened once, and ``replay_recording`` on request."""

    def __init__(self, bundle_path: str, settings: ReplaySettings):
        self.bundle = Bundle.open(bundle_path)
        self.settings = settings
        self.backends = open_backends(self.bundle, settings)

    def replay(self, recording: Recording) -> RecordingResult:
        return replay_recording(recording, bundle=self.bundle, settings=self.settings, backends=self.backends)

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        self.backends = {}


def replay_on_ray(recordings: list[Recording], *, bundle: Path, settings: ReplaySettings, options: RayOptions,
                  on_result: Callable[[RecordingResult], None] | None = None) -> list[RecordingResult]:
    """Replay ``recordings`` on Ray; results in the order they finished. Joins or starts Ray as
    ``options`` say (a Ray already initialised in this process is used as it is) and stops a Ray it
    started."""
    started_here = _connect(options)
    actors = []
    try:
        workers = _worker_count(options, len(recordings))
        remote = ray.remote(ReplayWorker).options(num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker,
                                                   max_restarts=options.max_retries,
                                                   max_task_retries=options.max_retries)
        actors = [remote.remote(str(bundle), settings) for _ in range(workers)]
        return _dispatch(recordings, actors, on_result=on_result)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started_here:
            ray.shutdown()


def _dispatch(recordings: list[Recording], actors: list, *,
              on_result: Callable[[RecordingResult], None] | None) -> list[RecordingResult]:
    """Give each idle actor the next recording until all are done. A recording whose actor died
    for good (every restart used) fails with Ray's reason; so do the ones left when no actor is."""
    pending = collections.deque(recordings)
    in_flight: dict = {}
    results: list[RecordingResult] = []

    def finish(result: RecordingResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    def submit(actor) -> None:
        if pending:
            recording = pending.popleft()
            in_flight[actor.replay.remote(recording)] = (actor, recording)

    for actor in actors:
        submit(actor)
    while in_flight:
        (ref,), _ = ray.wait(list(in_flight), num_returns=1)
        actor, recording = in_flight.pop(ref)
        try:
            finish(ray.get(ref))
        except RayError as exc:  # the worker died and stayed dead, or Ray itself failed
            finish(RecordingResult(recording, "failed", reason=f"the Ray worker failed: {_first_line(exc)}"))
            actors.remove(actor)
            if not actors:
                while pending:
                    finish(RecordingResult(pending.popleft(), "failed", reason="no Ray worker left to replay it"))
            continue
        submit(actor)
    return results


def _connect(options: RayOptions) -> bool:
    """Join the cluster, or start a local Ray; True when this call started it."""
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": not options.quiet, "logging_level": logging.WARNING}
    address = options.address or os.environ.get("RAY_ADDRESS")
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise DataError(f"cannot join the Ray cluster at {address}: {_first_line(exc)}; start it with "
                            "`ray start --head` or give the head's address") from exc
        return True
    cpus = options.workers * options.cpus_per_worker if options.workers else os.cpu_count() or 1
    ray.init(num_cpus=max(1, math.ceil(cpus)), include_dashboard=False,
             object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
    return True


def _worker_count(options: RayOptions, recordings: int) -> int:
    """``options.workers``, else what the cluster fits; never more than there are recordings."""
    workers = options.workers
    if workers is None:
        resources = ray.cluster_resources()
        workers = int(resources.get("CPU", 1) // max(options.cpus_per_worker, 1e-9))
        if options.gpus_per_worker:
            workers = min(workers, int(resources.get("GPU", 0) // options.gpus_per_worker))
        if workers < 1:
            raise DataError(f"the Ray cluster has {resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} "
                            f"GPUs: not enough for one worker of {options.cpus_per_worker:g} CPUs and "
                            f"{options.gpus_per_worker:g} GPUs")
    return max(1, min(workers, recordings))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
