"""Peak memory of `vitdeploy export` per zoo model, at the command's defaults (random weights).

Each export runs as its own child process (``python -m vitdeploy.cli.app export MODEL --out TMP``);
its peak resident memory is the kernel's high-water mark for that process (``ru_maxrss`` from
``wait4``), so nothing else running on the machine is counted. A child that passes ``--cap-gb``
of resident memory is killed (so a shared machine is not driven into the OOM killer) and reported
as over the cap.

    nice python tools/bench_export_memory.py sam-vit-b vit-base-detr --cap-gb 14

Target: every zoo model fits a 16 GB laptop (peak RSS well under 16 GB) at its defaults.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GIB = 1024**3


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def measure(model: str, *, extra: list[str], cap_bytes: int) -> tuple[int, float, int, bool, str]:
    """Export ``model`` in a child; returns (peak RSS bytes, seconds, exit code, killed at the cap,
    the tail of the child's output)."""
    with tempfile.TemporaryDirectory(prefix="vitdeploy-exportmem-") as tmp:
        cmd = [sys.executable, "-m", "vitdeploy.cli.app", "export", model, "--out", str(Path(tmp) / "bundle"),
               *extra]
        log = Path(tmp) / "log.txt"
        start = time.monotonic()
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "120"})
        killed, done = threading.Event(), threading.Event()

        def watch() -> None:  # the kernel's high-water mark is exact; this only enforces the cap
            while not done.wait(0.1):
                if _rss_bytes(proc.pid) > cap_bytes:
                    killed.set()
                    proc.kill()
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)  # not proc.wait(): wait4 also returns the child's usage
        done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - start
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-3:])
    return usage.ru_maxrss * 1024, seconds, proc.returncode, killed.is_set(), tail  # ru_maxrss: KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="zoo model names, e.g. sam-vit-b vit-base-detr")
    parser.add_argument("--cap-gb", type=float, default=14.0, help="kill an export above this RSS, GiB")
    parser.add_argument("--max-cameras", type=int, help="pass --max-cameras (default: the command's default)")
    args = parser.parse_args()
    extra = [] if args.max_cameras is None else ["--max-cameras", str(args.max_cameras)]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GIB:.0f} GiB RAM; "
          f"export {' '.join(extra) or 'at its defaults'}")
    failed = 0
    for model in args.models:
        peak, seconds, code, killed, tail = measure(model, extra=extra, cap_bytes=int(args.cap_gb * GIB))
        if killed:
            print(f"{model}: over the {args.cap_gb:g} GiB cap after {seconds:.0f} s (killed); peak RSS >= "
                  f"{peak / GIB:.2f} GiB")
            failed += 1
        elif code != 0:
            print(f"{model}: export failed (exit {code}) after {seconds:.0f} s, peak RSS {peak / GIB:.2f} GiB\n{tail}")
            failed += 1
        else:
            print(f"{model}: peak RSS {peak / GIB:.2f} GiB, {seconds:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
