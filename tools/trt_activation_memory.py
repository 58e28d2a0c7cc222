"""Activation memory of a bundle's TensorRT engine, and what one shared buffer saves (issue 22).

Opens the bundle's engine for this GPU (TensorRT, a CUDA layer and a GPU needed: an Orin for the
figures that matter) and prints, per camera count n, what TensorRT says n cameras need
(``update_device_memory_size_for_shapes``), the memory the CUDA-graph contexts for 1..n cameras
plus the main context took when each allocated the engine's largest size (TensorRT's default,
``STATIC``), the one buffer they share now (``USER_MANAGED``), and the difference.

    vitdeploy export vit-base-detr --out bundles/base --max-cameras 6
    vitdeploy calibrate bundles/base --precision fp16 && vitdeploy build bundles/base --fp16
    python tools/trt_activation_memory.py bundles/base --precision fp16
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()

    from vitdeploy.runtime.backends.tensorrt import from_bundle
    from vitdeploy.tensorrt.memory import format_rows

    with from_bundle(args.bundle, precision=args.precision, device=args.device) as backend:
        rows = backend.activation_memory()
        d = backend.describe()
    print(f"{d['plan']}: TensorRT {d['tensorrt']}, {d['gpu']}, CUDA layer {d['cuda_layer']}, I/O {d['io']}")
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
