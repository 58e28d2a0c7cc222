"""``replay_recording``: one recording through the bundle at every precision, plain Python.

This is the unit of work. Ray only schedules it (``vitdeploy.replay.cluster``); in one process it
is called in a loop. Each precision is one free-running `run_rig` — the code `vitdeploy run`
runs — over the recording's rig (``rigs.recording_rig``), writing the same JSONL.

Outputs go to ``OUT/recordings/<id>/``: ``<precision>.jsonl``, ``rig.<precision>.toml`` (the rig:
`vitdeploy run BUNDLE --rig` replays it in one process), ``summary.json`` and, written last,
``complete.json``, the completeness marker with the fingerprint of what made the outputs (the
sha256 of each ONNX/engine file used, the settings, the size and time of the recording's files).
Everything is written in a staging folder beside it, which is renamed into place only when
whole: a worker killed half-way leaves no half-written recording behind, and a retry starts anew.
A recording whose marker carries the same fingerprint is not replayed again.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vitdeploy.bundle import Bundle, Precision, atomic_write_text
from vitdeploy.errors import DataError, VitDeployError
from vitdeploy.heads import head_for
from vitdeploy.replay.recordings import Recording, RecordingKind
from vitdeploy.replay.rigs import recording_rig, recording_sources, rig_toml
from vitdeploy.replay.summary import PrecisionRun, recording_summary
from vitdeploy.runtime.backends.base import Backend
from vitdeploy.runtime.rig import ModelConfig
from vitdeploy.runtime.run import RunOptions, run_rig
from vitdeploy.runtime.sources import Health

RECORDINGS_DIR = "recordings"
SUMMARY_NAME = "summary.json"
MARKER_NAME = "complete.json"
#: Staging folders are ``.<id>.staging-<pid>-<random>`` beside the recording's folder.
STAGING_INFIX = ".staging-"


@dataclass(frozen=True)
class ReplaySettings:
    """What every worker needs to replay a recording (picklable). ``out`` is absolute;
    ``precisions`` are in replay order, FP32 (the reference) first; ``files`` maps each precision
    to the sha256 of the files its backend runs (the bundle's part of the fingerprint)."""

    out: Path
    precisions: tuple[Precision, ...]
    backend: str = "onnxruntime"
    device: str | None = None
    score_threshold: float = 0.05
    top_k: int = 100
    allow_rejected: bool = False
    files: dict[str, dict[str, str]] = field(default_factory=dict)

    def model(self, precision: Precision) -> ModelConfig:
        return ModelConfig(backend=self.backend, precision=precision, device=self.device,
                           score_threshold=self.score_threshold, top_k=self.top_k, allow_rejected=self.allow_rejected)

    def fingerprint(self, recording: Recording) -> dict:
        """What a recording's outputs were made from: equal fingerprints, equal outputs."""
        return {"precisions": [p.value for p in self.precisions], "backend": self.backend, "device": self.device,
                "score_threshold": self.score_threshold, "top_k": self.top_k, "allow_rejected": self.allow_rejected,
                "files": self.files, "recording": recording.to_dict(), "recording_files": recording.fingerprint()}

    def folder(self, recording: Recording) -> Path:
        return self.out / RECORDINGS_DIR / recording.id


@dataclass
class RecordingResult:
    """How one recording went: ``status`` "complete" or "failed" (with ``reason``); ``reused``: its
    outputs were complete from an earlier replay and nothing was recomputed; ``summary`` the
    recording's summary (``summary.json``); ``worker`` host:pid; ``seconds`` wall time."""

    recording: Recording
    status: str
    summary: dict | None = None
    reason: str = ""
    reused: bool = False
    worker: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    def to_dict(self) -> dict:
        return {"id": self.recording.id, "path": str(self.recording.path), "kind": self.recording.kind.value,
                "status": self.status, "reason": self.reason, "reused": self.reused, "worker": self.worker,
                "seconds": round(self.seconds, 3),
                "agreement": None if self.summary is None else self.summary.get("agreement")}


def completed(recording: Recording, settings: ReplaySettings) -> RecordingResult | None:
    """The result of an earlier replay of ``recording`` whose outputs are complete and were made
    from the same fingerprint, or None (then it must be replayed)."""
    folder = settings.folder(recording)
    try:
        marker = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
        summary = json.loads((folder / SUMMARY_NAME).read_text(encoding="utf-8"))
        fingerprint = json.loads(json.dumps(settings.fingerprint(recording)))  # as JSON gives it back
    except (OSError, ValueError):
        return None
    if marker.get("fingerprint") != fingerprint:
        return None
    return RecordingResult(recording, "complete", summary=summary, reused=True, worker=marker.get("worker", ""))


def replay_recording(recording: Recording, *, bundle: Bundle, settings: ReplaySettings,
                     backends: Mapping[Precision, Backend] | None = None) -> RecordingResult:
    """Replay ``recording`` at every precision of ``settings`` into its output folder and return
    how it went; a recording that is already complete is not replayed again (``reused``).

    ``backends``: open backends per precision to use (a long-lived worker's sessions; not closed
    here); default, each run opens its own. A recording that cannot be replayed (unreadable, a
    camera that fails, no frame at all) is a "failed" result with the reason, never an exception:
    one bad file must not stop a replay of thousands.
    """
    started = time.monotonic()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    done = completed(recording, settings)
    if done is not None:
        return done
    final = settings.folder(recording)
    staging = final.parent / f".{recording.id}{STAGING_INFIX}{os.getpid()}-{secrets.token_hex(3)}"
    try:
        staging.mkdir(parents=True)
        runs = {p: _run(recording, bundle=bundle, precision=p, settings=settings, out=staging,
                        backend=(backends or {}).get(p)) for p in settings.precisions}
        summary = recording_summary(recording, runs, head=head_for(bundle.manifest))
        summary["worker"] = worker
        atomic_write_text(staging / SUMMARY_NAME, json.dumps(summary, indent=1) + "\n")
        marker = {"fingerprint": settings.fingerprint(recording), "worker": worker}
        atomic_write_text(staging / MARKER_NAME, json.dumps(marker, indent=1) + "\n")
        _publish(staging, final)
    except Exception as exc:  # noqa: BLE001 - reported as this recording's failure, the others go on
        return RecordingResult(recording, "failed", reason=_reason(exc), worker=worker,
                               seconds=time.monotonic() - started)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RecordingResult(recording, "complete", summary=summary, worker=worker, seconds=time.monotonic() - started)


def _run(recording: Recording, *, bundle: Bundle, precision: Precision, settings: ReplaySettings, out: Path,
         backend: Backend | None) -> PrecisionRun:
    """One free-running run of the recording at ``precision``; a ``DataError`` when it gave no
    frame set or a camera failed (an unreadable file)."""
    rig = recording_rig(recording, model=settings.model(precision), jsonl=f"{precision.value}.jsonl")
    sources, truth = recording_sources(recording, manifest=bundle.manifest)
    if recording.kind is not RecordingKind.COCO:
        atomic_write_text(out / f"rig.{precision.value}.toml", rig_toml(rig, bundle=bundle.path.resolve()))
    summary = run_rig(rig, bundle=bundle, options=RunOptions(out=out, handle_sigint=False), backend=backend,
                      sources=sources)
    failed = [c for c in summary.cameras if c.health is Health.FAILED]
    if summary.sets_out == 0 or failed:
        said = "; ".join(f"camera {c.name}: {c.last_error or c.health.value}" for c in failed or summary.lost_cameras)
        raise DataError(f"{precision.value}: " + ("no frame set" if summary.sets_out == 0 else "a camera failed")
                        + (f" ({said})" if said else ""))
    return PrecisionRun(precision, out / f"{precision.value}.jsonl", summary, truth)


def _publish(staging: Path, final: Path) -> None:
    """Put the staging folder in ``final``'s place: renamed, so a reader sees the old outputs or
    the new, never a mix; outputs of an earlier replay are moved aside first, then removed."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{secrets.token_hex(3)}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _reason(exc: BaseException) -> str:
    """One line: the message of a vitdeploy error, else the exception's type, message and place."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, VitDeployError):
        return text or type(exc).__name__
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    place = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    return f"{type(exc).__name__}: {text}{place}"


def clean_staging(out: Path) -> None:
    """Remove staging folders left by workers that were killed (call when no replay is running
    into ``out``)."""
    folder = out / RECORDINGS_DIR
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".") and (STAGING_INFIX in p.name or ".old-" in p.name):
                with contextlib.suppress(OSError):
                    shutil.rmtree(p)



def open_backends(bundle: Bundle, settings: ReplaySettings) -> dict[Precision, Backend]:
    """One open backend per precision of ``settings`` (a worker's long-lived sessions); the
    torch backend's model is built once for all of them."""
    from vitdeploy.runtime.backends import open_backend

    model = None
    if settings.backend == "torch":
        from vitdeploy.models.exported import exported_model

        model = exported_model(bundle.manifest)
    backends: dict[Precision, Backend] = {}
    try:
        for p in settings.precisions:
            backends[p] = open_backend(settings.backend, bundle, precision=p, device=settings.device, model=model,
                                       allow_rejected=settings.allow_rejected)
    except BaseException:
        for backend in backends.values():
            backend.close()
        raise
    return backends
