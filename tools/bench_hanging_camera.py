"""A rig with one camera that hangs: what it costs the healthy cameras, and how fast Ctrl-C ends it.

Six cameras at 5 Hz (``--rate``): two synthetic, a looping video, a truncated video, an image
folder with a corrupt image, and a network stream (``http://127.0.0.1:PORT/...``) served by a
server that accepts the TCP connection and never sends a byte. ``vitdeploy run`` runs in a child
process (``python -m vitdeploy.cli.app run``) for ``--seconds``, then gets SIGINT. Printed: the
time to the first frame set, sets written, the share of sets in which every healthy camera was
present, sets dropped, how long the process took to exit after SIGINT, its exit code, and
whether the JSONL and the mosaic video are whole.

    python tools/bench_hanging_camera.py --seconds 12

Without the hanging camera (``--no-hang``) the same rig shows the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "runtime"))
from streams import SilentServer  # noqa: E402 - the loopback cameras the tests use

SIZE = (64, 96)  # H, W of every camera's frames, pixels


def make_media(folder: Path) -> None:
    """A looping video, a video cut off mid-file, and an image folder with one corrupt image."""
    frames = [np.full((*SIZE, 3), 20 * k % 256, np.uint8) for k in range(40)]
    for name, count in (("loop.mp4", 40), ("cut.mp4", 40)):
        writer = cv2.VideoWriter(str(folder / name), cv2.VideoWriter_fourcc(*"mp4v"), 5, (SIZE[1], SIZE[0]))
        for f in frames[:count]:
            writer.write(f)
        writer.release()
    cut = folder / "cut.mp4"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    images = folder / "images"
    images.mkdir()
    for k in range(20):
        cv2.imwrite(str(images / f"{k:03d}.png"), frames[k])
    (images / "010.png").write_bytes(b"not a png")


def rig_text(hang_url: str | None, rate: float, bundle: Path) -> str:
    h, w = SIZE
    cams = [("front", f"synthetic://front?size={h}x{w}&loop=8", {}),
            ("front_left", f"synthetic://front_left?size={h}x{w}&loop=8", {}),
            ("rear", "loop.mp4", {"loop": True}),
            ("rear_left", "cut.mp4", {}),
            ("rear_right", "images", {"loop": True})]
    if hang_url is not None:
        cams.append(("dash", hang_url, {"reconnect_interval_s": 0.5}))
    lines = [f"rate_hz = {rate}", "sync_tolerance_ms = 100", "latency_budget_ms = 1000",
             f'[model]\nbundle = "{bundle}"', '[outputs]\njsonl = "frames.jsonl"\nvideo = "mosaic"\nlive = false']
    for name, source, extra in cams:
        lines.append(f'[[cameras]]\nname = "{name}"\nsource = "{source}"\nfps = {rate}')
        lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="run time before SIGINT, s")
    parser.add_argument("--rate", type=float, default=5.0, help="frame sets per second")
    parser.add_argument("--no-hang", action="store_true", help="leave the hanging camera out (baseline)")
    parser.add_argument("--bundle", type=Path, help="bundle to run (default: vit-test-detr exported here)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vitdeploy-hang-") as tmp:
        folder = Path(tmp)
        bundle = args.bundle
        if bundle is None:
            from vitdeploy.exporter.export import ExportOptions, export_model

            bundle = export_model("vit-test-detr", out=folder / "bundle",
                                  options=ExportOptions(max_cameras=6)).bundle.path
        make_media(folder)
        server = None if args.no_hang else SilentServer()
        (folder / "rig.toml").write_text(rig_text(server and server.url, args.rate, bundle.resolve()))
        out = folder / "out"
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "vitdeploy.cli.app", "run", "--rig", str(folder / "rig.toml"),
                                 "--out", str(out), "--no-live"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, "COLUMNS": "160"})
        jsonl = out / "frames.jsonl"
        first = None
        while time.monotonic() - start < args.seconds and proc.poll() is None:
            if first is None and jsonl.is_file() and jsonl.stat().st_size:
                first = time.monotonic() - start
            time.sleep(0.02)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        exit_s = time.monotonic() - signalled
        if server is not None:
            server.close()
        records = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.is_file() else []
        healthy = ("front", "front_left", "rear")
        full = sum(all(not c["missing"] for c in r["cameras"] if c["name"] in healthy) for r in records[1:])
        cap = cv2.VideoCapture(str(out / "mosaic.mp4"))
        video_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        print(output)
        startup = records[0]["timestamps"]["sync"] - records[0]["timestamps"]["tick"] if records else None
        print(f"first frame set assembled {startup if startup is None else round(startup, 2)} s after the cameras "
              f"started ({first if first is None else round(first, 2)} s after the process started)")
        print(f"{len(records)} sets in the JSONL; healthy cameras all present in {full}/{max(0, len(records) - 1)} "
              "sets after the first")
        print(f"exit {proc.returncode} {exit_s:.2f} s after SIGINT; mosaic video {video_frames} frames, "
              f"readable: {cap.read()[0] if cap.isOpened() else False}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
