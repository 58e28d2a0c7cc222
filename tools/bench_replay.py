"""Recordings per minute of `vitdeploy replay`: in one process, on a local Ray with 1 and 2 workers,
and on a local 2-node Ray cluster joined by address; and the overhead against `vitdeploy run` in
one process on the same recordings.

    nice python tools/bench_replay.py --recordings 8 --frames 50 --out runs/bench_replay

The recordings are synthetic single-camera drives (mp4) at the model's input size; the bundle is a
fresh export of ``--model`` (default the tiny test detector, whose inference is cheap, so the
figures show replay's own costs) or ``--bundle``. Each configuration replays into its own folder
(nothing is reused). "run" is `run_rig` on each recording's rig, one after the other, a backend
opened per run as `vitdeploy run` does; its time is the reference of the overhead column. The Ray
rows include starting and stopping Ray (a local Ray) or joining the cluster, and starting the
workers; the "Ray start+stop" row measures that fixed cost alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_data(root: Path, *, model: str, bundle: str | None, recordings: int, frames: int):
    from vitdeploy.bundle import Bundle
    from vitdeploy.data.video import write_videos

    if bundle:
        b = Bundle.open(bundle)
    else:
        from vitdeploy.exporter.export import ExportOptions, export_model

        b = export_model(model, out=root / "bundle", options=ExportOptions(max_cameras=1)).bundle
    drives = root / "drives"
    for i in range(recordings):
        (video,) = write_videos(root / f".v{i}", frames=frames, cameras=1, size=tuple(b.manifest.image_size), seed=i)
        drives.mkdir(exist_ok=True)
        video.rename(drives / f"drive{i:03d}.mp4")
        shutil.rmtree(root / f".v{i}")
    return b, drives


def single_process_run(bundle, recordings, out: Path, settings) -> float:
    from vitdeploy.replay import recording_rig
    from vitdeploy.runtime.run import RunOptions, run_rig

    start = time.monotonic()
    for r in recordings:
        for p in settings.precisions:
            rig = recording_rig(r, model=settings.model(p), jsonl=f"{p.value}.jsonl")
            run_rig(rig, bundle=bundle, options=RunOptions(out=out / r.id, handle_sigint=False))
    return time.monotonic() - start


def timed_replay(bundle, recordings, out: Path, **options) -> float:
    from vitdeploy.replay import ReplayOptions, replay

    start = time.monotonic()
    report = replay(bundle, recordings, options=ReplayOptions(out=out, quiet=True, **options))
    seconds = time.monotonic() - start
    if report.failed or report.replayed != report.complete:
        raise SystemExit(f"replay into {out} did not replay every recording: {[r.reason for r in report.failed]}")
    return seconds


def ray_start_stop() -> float:
    import ray

    start = time.monotonic()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 1024**2)
    ray.shutdown()
    return time.monotonic() - start


def two_node_cluster(tmp: Path) -> tuple[str, list[list[str]]] | None:
    """Start a head and a second node on 127.0.0.1 (1 CPU each); (address, stop commands), or None
    when it does not run here."""
    ray_bin = str(Path(sys.executable).with_name("ray"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    env = dict(os.environ)
    head = [ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "1",
            "--include-dashboard", "false", "--temp-dir", str(tmp / "ray"), "--disable-usage-stats"]
    second = [ray_bin, "start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
              "--disable-usage-stats"]
    for cmd in (head, second):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
        if done.returncode != 0:
            print(f"2-node cluster not started ({' '.join(cmd[1:3])}): {done.stderr.strip()[-400:]}")
            subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env)
            return None
    return address, [[ray_bin, "stop", "--force"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vit-test-detr")
    ap.add_argument("--bundle", help="an existing bundle instead of exporting --model")
    ap.add_argument("--recordings", type=int, default=8)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_replay"))
    ap.add_argument("--no-cluster", action="store_true", help="skip the 2-node cluster")
    args = ap.parse_args()

    from vitdeploy.replay import ReplayOptions, find_recordings, replay_settings

    rows = []
    with tempfile.TemporaryDirectory(prefix="vitdeploy-bench-replay-") as tmp_name:
        tmp = Path(tmp_name)
        bundle, drives = make_data(tmp, model=args.model, bundle=args.bundle, recordings=args.recordings,
                                   frames=args.frames)
        recordings = find_recordings(drives)
        settings = replay_settings(bundle, ReplayOptions(out=tmp / "x", workers=0))
        run_s = single_process_run(bundle, recordings, tmp / "run", settings)
        rows.append(("run, one process", run_s))
        rows.append(("replay, in this process (--workers 0)", timed_replay(bundle, recordings, tmp / "w0", workers=0)))
        rows.append(("Ray start+stop alone (2 CPUs)", ray_start_stop()))
        for n in (1, 2):
            rows.append((f"replay, local Ray, {n} worker{'s' * (n > 1)}",
                         timed_replay(bundle, recordings, tmp / f"ray{n}", workers=n)))
        if not args.no_cluster:
            cluster = two_node_cluster(tmp)
            if cluster is not None:
                address, stops = cluster
                try:
                    rows.append(("replay, 2-node Ray cluster by --address, 2 workers",
                                 timed_replay(bundle, recordings, tmp / "cluster", workers=2, address=address)))
                finally:
                    for cmd in stops:
                        subprocess.run(cmd, capture_output=True)
    n = len(recordings)
    print(f"{n} recordings x {args.frames} frames, {bundle.manifest.model} at {tuple(bundle.manifest.image_size)}, "
          f"precisions {', '.join(p.value for p in settings.precisions)}, {os.cpu_count()} CPUs")
    print(f"{'configuration':55s} {'seconds':>8s} {'rec/min':>8s} {'vs run':>8s}")
    results = []
    for name, seconds in rows:
        per_min = n / seconds * 60 if not name.startswith("Ray start") else None
        overhead = (seconds / run_s - 1) * 100 if per_min is not None and name != "run, one process" else None
        print(f"{name:55s} {seconds:8.1f} {per_min or float('nan'):8.1f} "
              + (f"{overhead:+7.0f}%" if overhead is not None else f"{'':8s}"))
        results.append({"configuration": name, "seconds": round(seconds, 2),
                        "recordings_per_minute": None if per_min is None else round(per_min, 1),
                        "overhead_vs_run_percent": None if overhead is None else round(overhead, 1)})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_replay.json").write_text(json.dumps({"recordings": n, "frames": args.frames,
                                                            "model": bundle.manifest.model, "cpus": os.cpu_count(),
                                                            "results": results}, indent=1) + "\n")
    print(f"wrote {args.out / 'bench_replay.json'}")


if __name__ == "__main__":
    main()
