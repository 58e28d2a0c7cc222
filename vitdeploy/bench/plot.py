"""The latency distribution of every configuration as a PNG: box plot and CDF side by side.

Drawn on a bare matplotlib ``Figure`` with the Agg canvas, never through ``pyplot``, so it needs
no display, changes no global backend, and is safe to call from any thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitdeploy.bench.report import BenchReport
from vitdeploy.bundle import atomic_path
from vitdeploy.errors import DataError
from vitdeploy.runtime.machine import machine_line


def write_plot(report: BenchReport, path: str | Path) -> Path:
    """Draw the latency samples (ms) of every configuration that ran into ``path`` (PNG),
    atomically. Raises ``DataError`` when no configuration has samples."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [(r.config.label, np.asarray(r.samples_ms, np.float64)) for r in report.ran if len(r.samples_ms)]
    if not rows:
        raise DataError("no latency samples to plot: every configuration was skipped")
    labels = [label for label, _ in rows]
    samples = [s[np.isfinite(s)] for _, s in rows]
    deadline = report.settings.get("budget_ms")
    what = "end-to-end latency" if report.settings.get("mode") == "deadline" else "inference latency"

    fig = Figure(figsize=(12, 1.2 + 0.45 * len(rows)), layout="constrained")
    FigureCanvasAgg(fig)
    box, cdf = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    box.boxplot(samples, vert=False, tick_labels=labels, whis=(1, 99), showfliers=True,
                flierprops={"markersize": 2, "alpha": 0.5})
    box.invert_yaxis()
    box.set_xlabel(f"{what} per frame set, ms (whiskers: p1-p99)")
    for label, s in zip(labels, samples, strict=True):
        x = np.sort(s)
        cdf.plot(x, np.arange(1, len(x) + 1) / len(x), label=label, drawstyle="steps-post")
    cdf.set_xlabel(f"{what}, ms")
    cdf.set_ylabel("fraction of frame sets")
    cdf.grid(alpha=0.3)
    lo = min(float(s.min()) for s in samples if s.size)
    hi = max(float(s.max()) for s in samples if s.size)
    if lo > 0 and hi / lo > 20:  # a long tail (or configurations far apart) would squash the rest
        for ax in (box, cdf):
            ax.set_xscale("log")
    if deadline:
        for ax in (box, cdf):
            ax.axvline(deadline, color="red", linestyle="--", linewidth=1)
        cdf.text(deadline, 0.02, f" budget {deadline:g} ms", color="red", fontsize=8)
    if len(rows) <= 12:
        cdf.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{report.bundle.get('model', '?')} on {machine_line(report.machine)}", fontsize=9)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
