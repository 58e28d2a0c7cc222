"""NVIDIA ModelOpt, run in a child process whose output goes to a log file.

ModelOpt prints a great deal (its loggers write to the stdout they found at import, ONNX Runtime's
calibrator prints and draws tqdm bars, C++ code logs to the file descriptors) and reconfigures
Python logging globally. Running it in a child process with stdout/stderr sent to a file keeps
the CLI readable, leaves the parent's logging alone and returns ModelOpt's memory afterwards. The
parent hands over the job as JSON and the calibration tensors as an .npz; the child writes the
output ONNX. vitdeploy contributes the recipe and the data; the Q/DQ mechanics and the
mixed-precision conversion are ModelOpt's.

Child entry point: ``python -m vitdeploy.calibration.modelopt_runner JOB.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from vitdeploy.errors import CalibrationError

_LOG_TAIL_LINES = 12


def run_modelopt(job: str, *, onnx_path: Path, output_path: Path, calibration: dict[str, np.ndarray],
                 options: dict[str, Any], log_path: Path, set_cameras: int | None = None) -> None:
    """Run ``job`` ("int8": ``modelopt.onnx.quantization.quantize``; "fp16":
    ``modelopt.onnx.autocast.convert_to_mixed_precision``) on ``onnx_path`` with ``options`` as
    keyword arguments, writing ``output_path``; everything ModelOpt prints goes to ``log_path``.

    ``set_cameras``: the graph takes whole frame sets of this many cameras (``calibration`` holds
    them one after the other along the camera axis); ModelOpt then runs it one set at a time. By
    default it would run one camera at a time (a dynamic axis counts as 1)."""
    work = output_path.parent
    npz = work / f".{output_path.name}.calibration.npz"
    spec = work / f".{output_path.name}.job.json"
    try:
        np.savez(npz, **calibration)
        spec.write_text(json.dumps({"job": job, "onnx_path": str(onnx_path), "output_path": str(output_path),
                                    "calibration": str(npz), "options": options, "set_cameras": set_cameras}))
        # TMPDIR: ModelOpt and ONNX Runtime put intermediate ONNX files in the system temp folder
        # and remove them only when they finish. In a folder of ours they go whatever happens, also
        # after a Ctrl-C (subprocess.run kills the child and waits for it before this folder goes).
        with open(log_path, "ab") as log, tempfile.TemporaryDirectory(dir=work, prefix=".modelopt-") as temp:
            proc = subprocess.run([sys.executable, "-m", "vitdeploy.calibration.modelopt_runner", str(spec)],
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": temp})
    finally:
        for path in (npz, spec):
            path.unlink(missing_ok=True)
    if proc.returncode != 0 or not output_path.is_file():
        what = "INT8 quantization" if job == "int8" else "FP16 conversion"
        raise CalibrationError(f"ModelOpt {what} failed (exit code {proc.returncode}); the end of its log:\n"
                               f"{log_tail(log_path)}")


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:])


def _per_set(npz_path: str, cameras: int) -> str:
    """A folder of one .npz per frame set, which AutoCast's reference runner runs one file at a time."""
    folder = Path(npz_path).with_suffix(".sets")
    folder.mkdir(exist_ok=True)
    with np.load(npz_path) as npz:
        data = {k: npz[k] for k in npz.files}
    sets = next(iter(data.values())).shape[0] // cameras
    for i in range(sets):
        np.savez(folder / f"{i:06d}.npz", **{k: v[i * cameras:(i + 1) * cameras] for k, v in data.items()})
    return str(folder)


def _child(spec_path: str) -> int:
    job = json.loads(Path(spec_path).read_text())
    options = job["options"]
    cameras = job.get("set_cameras")
    if job["job"] == "int8":
        from modelopt.onnx.quantization import quantize

        with np.load(job["calibration"]) as npz:
            data = {k: npz[k] for k in npz.files}
        if cameras:  # one calibration step per frame set
            options["calibration_shapes"] = ",".join(f"{k}:{'x'.join(map(str, (cameras, *v.shape[1:])))}"
                                                     for k, v in data.items())
        quantize(onnx_path=job["onnx_path"], quantize_mode="int8", calibration_data=data, calibration_eps=["cpu"],
                 output_path=job["output_path"], log_level="INFO", **options)
    elif job["job"] == "fp16":
        import onnx
        from modelopt.onnx.autocast import convert_to_mixed_precision

        calibration = _per_set(job["calibration"], cameras) if cameras else job["calibration"]
        model = convert_to_mixed_precision(onnx_path=job["onnx_path"], low_precision_type="fp16", keep_io_types=True,
                                           calibration_data=calibration, providers=["cpu"], **options)
        onnx.save(model, job["output_path"])
    else:
        print(f"unknown job {job['job']!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
