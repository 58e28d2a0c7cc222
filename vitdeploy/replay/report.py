"""The replay report: every recording's outcome, the precisions over all recordings, and the
recordings where a precision agrees least with FP32 first — as JSON, Markdown and a plot.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitdeploy.bundle import atomic_path, atomic_write_text
from vitdeploy.extras import Extra, install_command, missing_libraries
from vitdeploy.replay.recording_run import RecordingResult

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_PNG = "report.png"


@dataclass
class ReplayReport:
    """What a replay did. ``results`` are in the order the recordings were given; ``lowest``
    how many recordings of lowest agreement the Markdown lists; ``files`` what was written."""

    bundle: dict
    settings: dict
    results: list[RecordingResult]
    seconds: float
    scheduler: str
    lowest: int = 10
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> list[RecordingResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[RecordingResult]:
        return [r for r in self.results if not r.ok]

    @property
    def replayed(self) -> list[RecordingResult]:
        """Complete recordings computed by this replay (not reused from an earlier one)."""
        return [r for r in self.complete if not r.reused]

    def ranked(self) -> list[RecordingResult]:
        """Complete recordings by their lowest agreement with FP32, lowest first (unmeasured last)."""
        return sorted(self.complete, key=lambda r: (r.summary.get("agreement") is None,
                                                    r.summary.get("agreement") or 0.0, r.recording.id))

    def precisions(self) -> dict[str, dict]:
        """Per precision over all complete recordings: sums, agreement (mean, min), mAP against
        labels (mean over labelled recordings), latency (median of the recordings' p50, worst p99)."""
        out: dict[str, dict] = {}
        for r in self.complete:
            for p, e in r.summary["precisions"].items():
                acc = out.setdefault(p, {"recordings": 0, "sets": 0, "frames": 0, "detections": 0, "skipped": 0,
                                         "_agreement": [], "_truth": [], "_p50": [], "_p99": []})
                acc["recordings"] += 1
                for k in ("sets", "frames", "detections", "skipped"):
                    acc[k] += e[k]
                if (e.get("agreement") or {}).get("value") is not None:
                    acc["_agreement"].append(e["agreement"]["value"])
                if (e.get("truth") or {}).get("map") is not None:
                    acc["_truth"].append(e["truth"]["map"])
                lat = e["latency_ms"]["end_to_end"]
                acc["_p50"] += [lat["p50"]] if lat["p50"] is not None else []
                acc["_p99"] += [lat["p99"]] if lat["p99"] is not None else []
        for acc in out.values():
            agreement, truth = acc.pop("_agreement"), acc.pop("_truth")
            p50, p99 = acc.pop("_p50"), acc.pop("_p99")
            acc["agreement"] = {"mean": _mean(agreement), "min": min(agreement, default=None), "measured": len(agreement)}
            acc["truth_map"] = {"mean": _mean(truth), "labelled": len(truth)}
            acc["end_to_end_ms"] = {"p50_median": _median(p50), "p99_max": max(p99, default=None)}
        return out

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "settings": self.settings, "scheduler": self.scheduler,
                "seconds": round(self.seconds, 3),
                "recordings": {"total": len(self.results), "complete": len(self.complete),
                               "replayed": len(self.replayed), "reused": len(self.complete) - len(self.replayed),
                               "failed": len(self.failed)},
                "precisions": self.precisions(),
                "lowest_agreement": [r.to_dict() for r in self.ranked()],
                "failed": [r.to_dict() for r in self.failed], "notes": self.notes}

    def markdown(self) -> str:
        d = self.to_dict()
        n = d["recordings"]
        lines = [f"# Replay of {self.bundle.get('model', '?')} ({self.bundle.get('path', '')})", "",
                 f"{n['total']} recordings: {n['complete']} complete ({n['replayed']} replayed now, {n['reused']} "
                 f"from before), {n['failed']} failed; {self.seconds:.1f} s {self.scheduler}.", "",
                 "| precision | recordings | frames | detections | agreement mean | agreement min | mAP vs labels "
                 "| e2e p50 ms | e2e p99 ms |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p, a in d["precisions"].items():
            lines.append(f"| {p} | {a['recordings']} | {a['frames']} | {a['detections']} | {figure(a['agreement']['mean'])} "
                         f"| {figure(a['agreement']['min'])} | {figure(a['truth_map']['mean'])} "
                         f"| {figure(a['end_to_end_ms']['p50_median'], 1)} | {figure(a['end_to_end_ms']['p99_max'], 1)} |")
        lines += ["", f"## The {min(self.lowest, len(self.complete))} recordings of lowest agreement with FP32", "",
                  "| recording | agreement | " + " | ".join(d["precisions"]) + " |",
                  "|---|---:|" + "---:|" * len(d["precisions"])]
        for r in self.ranked()[:self.lowest]:
            per = [figure(((r.summary["precisions"].get(p) or {}).get("agreement") or {}).get("value"))
                   for p in d["precisions"]]
            lines.append(f"| {r.recording.id} | {figure(r.summary.get('agreement'))} | " + " | ".join(per) + " |")
        if self.failed:
            lines += ["", "## Failed", ""] + [f"- {r.recording.id} ({r.recording.path}): {r.reason}" for r in self.failed]
        lines += [f"\nNote: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def write_report(report: ReplayReport, out: Path) -> list[Path]:
    """``report.json``, ``report.md`` and, with matplotlib (the ``plots`` extra), ``report.png``
    in ``out``, each written atomically; without matplotlib the report notes why there is no plot."""
    files = [out / REPORT_JSON, out / REPORT_MD]
    if missing_libraries(Extra.PLOTS):
        report.notes.append(f"no plot: matplotlib is not installed ({install_command([Extra.PLOTS])})")
    elif report.complete:
        write_plot(report, out / REPORT_PNG)
        files.append(out / REPORT_PNG)
    report.files = files
    atomic_write_text(files[0], json.dumps(report.to_dict(), indent=1) + "\n")
    atomic_write_text(files[1], report.markdown())
    return files


def write_plot(report: ReplayReport, path: Path) -> None:
    """Left: the distribution of agreement with FP32 per precision over the recordings; right: the
    recordings of lowest agreement. Drawn on a bare Agg ``Figure`` (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    precisions = [p for p in report.precisions() if p != "fp32"]
    ranked = [r for r in report.ranked() if r.summary.get("agreement") is not None][:report.lowest]
    fig = Figure(figsize=(11, 1.5 + 0.3 * max(len(ranked), 4)), layout="constrained")
    FigureCanvasAgg(fig)
    hist, low = fig.subplots(1, 2)
    for p in precisions:
        values = [v for r in report.complete
                  if (v := ((r.summary["precisions"].get(p) or {}).get("agreement") or {}).get("value")) is not None]
        if values:
            hist.hist(values, bins=np.linspace(0, 1, 21), alpha=0.6, label=p)
    hist.set_xlabel("agreement with FP32 (box mAP@[.50:.95])")
    hist.set_ylabel("recordings")
    if precisions:
        hist.legend(fontsize=8)
    names = [r.recording.id for r in ranked]
    bars = low.barh(names, [r.summary["agreement"] for r in ranked], color="tab:red")
    low.bar_label(bars, fmt="%.3f", label_type="center", color="white", fontsize=8)
    low.invert_yaxis()
    low.set_xlim(0, 1)
    low.set_xlabel("lowest agreement of any precision with FP32")
    low.set_title(f"the {len(ranked)} recordings of lowest agreement", fontsize=9)
    fig.suptitle(f"replay of {report.bundle.get('model', '?')}: {len(report.complete)} recordings", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def figure(value: float | None, digits: int = 3) -> str:
    """A figure for a table: ``digits`` decimals, '-' where there is none."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
