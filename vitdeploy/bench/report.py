"""A benchmark report: what ran, on which machine, and what it measured; as JSON and Markdown.

The JSON (schema ``vitdeploy.bench/1``) is the record: ``--compare`` and the regression report
read it back. It is written atomically (a temporary file renamed into place), holds no NaN (JSON
has none; missing figures are ``null``), and keeps the raw latency samples so that any statistic
can be recomputed later. Layout::

    {"schema": "vitdeploy.bench/1", "created_at": ISO-8601, "bundle": {...}, "machine": {...},
     "settings": {"warmup": int, "iterations": int|null, "duration_s": float|null,
                  "fps": float|null, "budget_ms": float|null},
     "results": [{"backend", "precision", "cameras", "device", "status": "ok"|"skipped",
                  "reason": str|null, "latency_ms": {LatencyStats}|null,
                  "throughput": {"sets_per_s", "frames_per_s"}|null,
                  "transfer_ms": {"h2d"|"compute"|"d2h": {LatencyStats}}, "memory": {...}|null,
                  "backend_info": {...}, "deadline": {...}|null, "samples_ms": [float]}]}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitdeploy.bench.machine import MemoryUse
from vitdeploy.bench.stats import Jitter, LatencyStats
from vitdeploy.bundle import Precision, atomic_write_text
from vitdeploy.errors import DataError
from vitdeploy.runtime.configs import Configuration
from vitdeploy.runtime.machine import machine_line

SCHEMA = "vitdeploy.bench/1"
#: Transfer/compute phases a backend may report through ``Backend.last_timing``.
PHASES = ("h2d", "compute", "d2h")


@dataclass
class DeadlineResult:
    """A rig fed at ``fps`` frame sets per second on a real clock against ``budget_ms``.

    ``late``: sets whose end-to-end latency (capture of the oldest frame to results) exceeded the
    budget; ``dropped``: sets the runtime dropped because a stage fell behind (each is a deadline
    missed too); ``missed = late + dropped``; ``miss_rate = missed / (sets_out + dropped)``.
    ``missing_frames``: camera frames absent from their set (a camera late beyond the sync
    tolerance). ``skew`` is the spread of capture times inside a set, ms.
    """

    fps: float
    budget_ms: float
    duration_s: float
    sets_expected: int
    sets_out: int
    late: int
    dropped: int
    missing_frames: int
    end_to_end: LatencyStats
    infer: LatencyStats
    jitter: Jitter
    skew: LatencyStats
    stopped_by: str

    @property
    def missed(self) -> int:
        return self.late + self.dropped

    @property
    def miss_rate(self) -> float:
        offered = self.sets_out + self.dropped
        return self.missed / offered if offered else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"fps": self.fps, "budget_ms": self.budget_ms, "duration_s": round(self.duration_s, 3),
                "sets_expected": self.sets_expected, "sets_out": self.sets_out, "late": self.late,
                "dropped": self.dropped, "missed": self.missed, "miss_rate": _clean(self.miss_rate),
                "missing_frames": self.missing_frames, "end_to_end_ms": self.end_to_end.to_dict(),
                "infer_ms": self.infer.to_dict(), "jitter_ms": self.jitter.to_dict(),
                "skew_ms": self.skew.to_dict(), "stopped_by": self.stopped_by}

    @classmethod
    def from_dict(cls, raw: dict) -> DeadlineResult:
        return cls(fps=raw["fps"], budget_ms=raw["budget_ms"], duration_s=raw["duration_s"],
                   sets_expected=raw["sets_expected"], sets_out=raw["sets_out"], late=raw["late"],
                   dropped=raw["dropped"], missing_frames=raw["missing_frames"],
                   end_to_end=LatencyStats.from_dict(raw["end_to_end_ms"]),
                   infer=LatencyStats.from_dict(raw["infer_ms"]),
                   jitter=Jitter.from_dict(raw["jitter_ms"]),
                   skew=LatencyStats.from_dict(raw["skew_ms"]), stopped_by=raw["stopped_by"])


@dataclass
class ConfigResult:
    """What one configuration measured, or why it was skipped (``reason``).

    ``latency``: per frame set, ms — in throughput mode one ``Backend.infer`` of an N-camera batch
    (host arrays in and out, so transfers are included), in deadline mode end to end through the
    runtime. ``sets_per_s``/``frames_per_s``: frame sets and camera frames per second.
    ``transfer``: the backend's own split (h2d / compute / d2h), where it can tell.
    """

    config: Configuration
    status: str = "ok"  # "ok" | "skipped"
    reason: str | None = None
    latency: LatencyStats | None = None
    sets_per_s: float | None = None
    transfer: dict[str, LatencyStats] = field(default_factory=dict)
    memory: MemoryUse | None = None
    backend_info: dict[str, str] = field(default_factory=dict)
    deadline: DeadlineResult | None = None
    samples_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def skipped(cls, config: Configuration, reason: str) -> ConfigResult:
        return cls(config=config, status="skipped", reason=reason)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def frames_per_s(self) -> float | None:
        return None if self.sets_per_s is None else self.sets_per_s * self.config.cameras

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "backend": c.backend, "precision": c.precision.value, "cameras": c.cameras, "device": c.device,
            "status": self.status, "reason": self.reason,
            "latency_ms": self.latency.to_dict() if self.latency else None,
            "throughput": None if self.sets_per_s is None else {
                "sets_per_s": _clean(self.sets_per_s), "frames_per_s": _clean(self.frames_per_s)},
            "transfer_ms": {k: v.to_dict() for k, v in self.transfer.items()},
            "memory": self.memory.to_dict() if self.memory else None,
            "backend_info": dict(self.backend_info),
            "deadline": self.deadline.to_dict() if self.deadline else None,
            "samples_ms": [round(float(v), 4) for v in self.samples_ms if math.isfinite(v)],
        }

    @classmethod
    def from_dict(cls, raw: dict) -> ConfigResult:
        config = Configuration(raw["backend"], Precision.parse(raw["precision"]), int(raw["cameras"]),
                               raw.get("device"))
        thr = raw.get("throughput")
        mem = raw.get("memory")
        return cls(config=config, status=raw["status"], reason=raw.get("reason"),
                   latency=LatencyStats.from_dict(raw["latency_ms"]) if raw.get("latency_ms") else None,
                   sets_per_s=_nan(thr["sets_per_s"]) if thr else None,
                   transfer={k: LatencyStats.from_dict(v) for k, v in (raw.get("transfer_ms") or {}).items()},
                   memory=MemoryUse(mem["kind"], mem["peak_delta_mib"]) if mem else None,
                   backend_info=dict(raw.get("backend_info") or {}),
                   deadline=DeadlineResult.from_dict(raw["deadline"]) if raw.get("deadline") else None,
                   samples_ms=np.asarray(raw.get("samples_ms") or [], np.float64))


@dataclass
class BenchReport:
    """One `vitdeploy bench` run: ``bundle`` (path, model, head, input size), ``machine``
    (``describe_machine()``, and under "doctor" what `vitdeploy doctor` reports: TensorRT, CUDA layer,
    GPU, a Jetson's power mode and clocks, OpenCV, warnings), ``settings`` (warm-up, iterations or duration, deadline) and one
    ``ConfigResult`` per configuration, in the order they ran."""

    bundle: dict[str, Any]
    machine: dict[str, Any]
    settings: dict[str, Any]
    results: list[ConfigResult]
    created_at: str = ""

    @property
    def ran(self) -> list[ConfigResult]:
        return [r for r in self.results if r.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "created_at": self.created_at, "bundle": self.bundle, "machine": self.machine,
                "settings": self.settings, "results": [r.to_dict() for r in self.results]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def write_json(self, path: str | Path) -> Path:
        """Write the report to ``path`` atomically (a reader sees the old file or the whole new one)."""
        path = Path(path)
        atomic_write_text(path, self.to_json())
        return path

    @classmethod
    def from_dict(cls, raw: Any, *, source: str = "report") -> BenchReport:
        if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
            got = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
            raise DataError(f"{source} is not a vitdeploy bench report (schema {got!r}, expected {SCHEMA!r}); "
                            "write one with `vitdeploy bench BUNDLE --json PATH`")
        try:
            return cls(bundle=dict(raw["bundle"]), machine=dict(raw["machine"]), settings=dict(raw["settings"]),
                       results=[ConfigResult.from_dict(r) for r in raw["results"]],
                       created_at=str(raw.get("created_at", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source} is a malformed bench report ({type(exc).__name__}: {exc}); "
                            "re-run `vitdeploy bench ... --json`") from None


def load_report(path: str | Path) -> BenchReport:
    """Read a bench JSON written by ``BenchReport.write_json``; a ``DataError`` says what is wrong."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"bench report {path} does not exist; write one with `vitdeploy bench BUNDLE --json {path}`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read bench report {path}: {exc}") from None
    return BenchReport.from_dict(raw, source=str(path))


# ---- Markdown ----------------------------------------------------------------------------------

def to_markdown(report: BenchReport) -> str:
    """A Markdown table of every configuration, headed by the model and the machine."""
    b = report.bundle
    lines = [f"# vitdeploy bench: {b.get('model', '?')}", "",
             f"- bundle: `{b.get('path', '?')}`, input {b.get('image_size')}",
             f"- machine: {machine_line(report.machine)}",
             f"- settings: {_settings_line(report.settings)}", ""]
    deadline = any(r.deadline for r in report.results)
    head = ["backend", "precision", "cameras", "p50 ms", "p90 ms", "p99 ms", "mean ms", "max ms", "sets/s",
            "frames/s", "h2d/compute/d2h ms", "peak mem MiB"]
    if deadline:
        head += ["missed", "jitter std ms", "skew p99 ms"]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in report.results:
        c = r.config
        if not r.ok:
            row = [c.backend, c.precision.value, str(c.cameras), f"skipped: {r.reason}"] + [""] * (len(head) - 4)
            lines.append("| " + " | ".join(_md_escape(x) for x in row) + " |")
            continue
        lat = r.latency
        split = "/".join(_num(r.transfer[p].median_ms, 2) if p in r.transfer else "-" for p in PHASES)
        row = [c.backend, c.precision.value, str(c.cameras), _num(lat.median_ms), _num(lat.p90_ms), _num(lat.p99_ms),
               _num(lat.mean_ms), _num(lat.max_ms), _num(r.sets_per_s), _num(r.frames_per_s),
               split if r.transfer else "-",
               _num(r.memory.peak_delta_mib) if r.memory and r.memory.peak_delta_mib is not None else "-"]
        if deadline:
            d = r.deadline
            row += ([f"{d.missed}/{d.sets_out + d.dropped}", _num(d.jitter.std_ms), _num(d.skew.p99_ms)]
                    if d else ["-", "-", "-"])
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _settings_line(s: dict[str, Any]) -> str:
    parts = [f"warm-up {s.get('warmup')}"]
    if s.get("iterations") is not None:
        parts.append(f"{s['iterations']} iterations")
    if s.get("duration_s") is not None:
        parts.append(f"{s['duration_s']:g} s")
    if s.get("fps") is not None:
        parts.append(f"deadline mode: {s['fps']:g} fps, budget {s['budget_ms']:g} ms")
    return ", ".join(parts)


def _num(v: float | None, digits: int = 1) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.{digits}f}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _clean(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)
