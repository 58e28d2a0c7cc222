"""Soak test: a 6-camera rig for a long time, watching memory, file descriptors and frame sets.

Cameras: three synthetic (replayed frames), two looping video files, and a network MJPEG camera
on 127.0.0.1 that drops out (its server goes away) and comes back, and now and then stalls (keeps
the connection, sends nothing). `run_rig` runs them through vit-test-detr (or ``--bundle``) at
``--rate`` Hz into a JSONL file and a mosaic video. Every minute it prints the process's resident
memory, its open file descriptors, its child processes, and from the JSONL the frame sets
assembled (in), written (out), dropped, and the deadline misses so far, with the machine's load
average; at the end the run summary and the memory slope (least squares over the minutes after
the first two).

    nice python tools/soak.py --minutes 30 --rate 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))
from streams import MjpegServer  # noqa: E402 - the loopback cameras the tests use

SIZE = (128, 224)  # H, W of every camera, pixels


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def children() -> int:
    me, count = str(os.getpid()), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                count += fh.read().rsplit(")", 1)[1].split()[1] == me
        except OSError:
            continue
    return count


class JsonlTail:
    """Counts of the JSONL so far, read incrementally: sets out, sets in (the last set's index + 1),
    deadline misses."""

    def __init__(self, path: Path):
        self.path, self.offset, self.out, self.last, self.misses = path, 0, 0, -1, 0

    def update(self) -> None:
        if not self.path.is_file():
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # being written: read it next time
                self.offset += len(line)
                rec = json.loads(line)
                self.out += 1
                self.last = rec["set"]
                self.misses += rec["deadline_miss"]


def drop_out(server: MjpegServer, stop: threading.Event, *, every_s: float, offline_s: float, stall_s: float) -> None:
    """Every ``every_s`` seconds: away for ``offline_s``; every other time also stalled for ``stall_s``."""
    k = 0
    while not stop.wait(every_s):
        server.online = False
        if stop.wait(offline_s):
            break
        server.online = True
        k += 1
        if k % 2 == 0:
            server.stall = True
            if stop.wait(stall_s):
                break
            server.stall = False
    server.online, server.stall = True, False


def rig_text(folder: Path, url: str, rate: float) -> str:
    h, w = SIZE
    cams = [(n, f"synthetic://{n}?size={h}x{w}&loop=50", "") for n in ("front", "front_left", "front_right")]
    cams += [(n, f"{n}.mp4", "loop = true") for n in ("rear_left", "rear_right")]
    cams.append(("rear", url, "timeout_s = 2.0\nreconnect_interval_s = 1.0"))
    text = (f"rate_hz = {rate}\nsync_tolerance_ms = 50\nlatency_budget_ms = 200\n"
            '[outputs]\njsonl = "frames.jsonl"\nvideo = "mosaic"\nlive = false\n')
    for name, source, extra in cams:
        text += f'[[cameras]]\nname = "{name}"\nsource = "{source}"\nfps = {rate}\n{extra}\n'
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=10.0, help="frame sets per second (and camera fps)")
    parser.add_argument("--bundle", type=Path, help="bundle to run (default: vit-test-detr exported here)")
    parser.add_argument("--report-s", type=float, default=60.0, help="seconds between reports")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also print the Python allocation sites that grew most after minute 2 (slower)")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(8)
    baseline = None

    from vitdeploy.bundle import Bundle
    from vitdeploy.data.video import write_videos
    from vitdeploy.runtime.rig import load_rig
    from vitdeploy.runtime.run import RunOptions, run_rig

    with tempfile.TemporaryDirectory(prefix="vitdeploy-soak-") as tmp:
        folder = Path(tmp)
        if args.bundle is None:
            from vitdeploy.exporter.export import ExportOptions, export_model

            bundle = export_model("vit-test-detr", out=folder / "bundle", options=ExportOptions(max_cameras=6)).bundle
        else:
            bundle = Bundle.open(args.bundle)
        videos = write_videos(folder, frames=100, cameras=5, size=SIZE, fps=args.rate)
        for v in videos[:3]:
            v.unlink()  # rear_left.mp4 and rear_right.mp4 stay
        server = MjpegServer(size=SIZE, fps=args.rate)
        (folder / "rig.toml").write_text(rig_text(folder, server.url, args.rate))
        stop = threading.Event()
        dropper = threading.Thread(target=drop_out, args=(server, stop), daemon=True,
                                   kwargs={"every_s": 90.0, "offline_s": 20.0, "stall_s": 10.0})
        result: dict = {}

        def run() -> None:
            try:
                options = RunOptions(out=folder / "out", duration=args.minutes * 60, handle_sigint=False)
                result["summary"] = run_rig(load_rig(folder / "rig.toml"), bundle=bundle, options=options)
            except BaseException as exc:  # reported below
                result["error"] = exc

        start = time.monotonic()
        runner = threading.Thread(target=run, name="soak-run")
        runner.start()
        dropper.start()
        tail = JsonlTail(folder / "out" / "frames.jsonl")
        samples: list[tuple[float, float]] = []
        print(f"{'min':>5} {'RSS MiB':>8} {'fds':>4} {'kids':>4} {'sets in':>8} {'out':>7} {'dropped':>7} "
              f"{'misses':>6} {'load':>5}  camera 'rear'", flush=True)
        while runner.is_alive():
            runner.join(args.report_s)
            tail.update()
            minute = (time.monotonic() - start) / 60
            rss = rss_mib()
            samples.append((minute, rss))
            if args.tracemalloc and baseline is None and minute >= 2.0:
                baseline = tracemalloc.take_snapshot()
            print(f"{minute:5.1f} {rss:8.1f} {open_fds():4d} {children():4d} {tail.last + 1:8d} {tail.out:7d} "
                  f"{tail.last + 1 - tail.out:7d} {tail.misses:6d} {os.getloadavg()[0]:5.1f}  "
                  f"server {'up' if server.online else 'down'}"
                  f"{', stalled' if server.stall else ''}, {server.connections} connections", flush=True)
        stop.set()
        server.close()
        if "error" in result:
            raise result["error"]
        s = result["summary"]
        print(f"\n{s.sets_out} sets out in {s.duration_s:.0f} s; dropped {s.dropped}; deadline misses "
              f"{s.deadline_misses} over {s.budget_ms:g} ms; e2e p50/p99 {s.percentiles('end_to_end')[50]:.1f}/"
              f"{s.percentiles('end_to_end')[99]:.1f} ms")
        for c in s.cameras:
            print(f"  {c.name:11s} in {c.frames_in:6d} out {c.frames_out:6d} skipped {c.skipped:5d} missing "
                  f"{c.missing:5d} reopened {c.reconnects:3d} health {c.health.value}")
        later = np.array([(m, r) for m, r in samples if m >= 2.0])
        if len(later) >= 3:
            slope = np.polyfit(later[:, 0], later[:, 1], 1)[0]
            print(f"memory: {samples[0][1]:.0f} MiB after the first report, {samples[-1][1]:.0f} MiB at the end; "
                  f"slope {slope:+.2f} MiB/min over minutes 2-{samples[-1][0]:.0f}")
        if baseline is not None:
            print("grew most in Python allocations since minute 2:")
            grown = sorted(tracemalloc.take_snapshot().compare_to(baseline, "traceback"), key=lambda d: -d.size_diff)
            for stat in grown[:5]:
                print(f"  {stat.size_diff / 2**10:+9.1f} KiB  {stat.traceback.format()[-2].strip()}  "
                      f"{stat.traceback.format()[-1].strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
