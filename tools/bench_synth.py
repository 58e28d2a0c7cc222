"""How fast the synthetic scene generator renders: ms per frame at 256x448 and 720x1280.

    .venv/bin/python tools/bench_synth.py [--frames 60] [--seed 0]

Renders ``--frames`` ticks of all six cameras (after one warm-up tick that paints the scene's
cached backgrounds) with and without masks, and prints the median and 95th percentile per frame.
The live ``synthetic`` camera source needs 6 cameras at 10-30 fps from a 2-core CPU: target
<= 5 ms per 256x448 frame and <= 25 ms per 720x1280 frame. Also prints the one-off cost of a scene
cut (new road, population and backgrounds), paid every ``scene_seconds`` of drive.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vitdeploy.data import SceneGenerator


def bench(size: tuple[int, int], *, with_masks: bool, frames: int, seed: int) -> tuple[float, float, float, float]:
    """(median ms, p95 ms, objects per frame, first-tick ms per frame) for one configuration."""
    gen = SceneGenerator(size=size, seed=seed, with_masks=with_masks)
    t0 = time.perf_counter()
    gen.frame_set(0)  # paints this scene's backgrounds
    first = (time.perf_counter() - t0) * 1000 / len(gen.cameras)
    times, objects = [], []
    for t in range(1, frames + 1):
        for cam in range(len(gen.cameras)):
            t0 = time.perf_counter()
            frame = gen.frame(t, cam)
            times.append((time.perf_counter() - t0) * 1000)
            objects.append(len(frame.annotations))
    return float(np.median(times)), float(np.percentile(times, 95)), float(np.mean(objects)), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60, help="ticks per configuration (x6 cameras)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'size':>9} {'masks':>5} {'median ms':>10} {'p95 ms':>8} {'objects':>8} {'scene cut ms':>13}")
    for size in ((256, 448), (720, 1280)):
        for with_masks in (True, False):
            med, p95, objs, first = bench(size, with_masks=with_masks, frames=args.frames, seed=args.seed)
            print(f"{size[0]}x{size[1]:<5} {'yes' if with_masks else 'no':>5} {med:10.2f} {p95:8.2f} {objs:8.1f} {first:13.1f}")


if __name__ == "__main__":
    main()
