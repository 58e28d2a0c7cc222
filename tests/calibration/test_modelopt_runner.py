"""ModelOpt runs in a child process: its output goes to the log, its failures become one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from vitdeploy.calibration import CalibrationError
from vitdeploy.calibration.modelopt_runner import run_modelopt


def test_a_modelopt_failure_is_a_calibration_error_with_the_end_of_its_log(tmp_path):
    log = tmp_path / "calibration.int8.log"
    with pytest.raises(CalibrationError, match="ModelOpt INT8 quantization failed") as info:
        run_modelopt("int8", onnx_path=tmp_path / "missing.onnx", output_path=tmp_path / "out.onnx",
                     calibration={"images": np.zeros((1, 3, 8, 8), np.float32)}, options={}, log_path=log)
    assert "missing.onnx" in str(info.value)  # the child's traceback tail names the problem
    assert log.is_file() and "Traceback" in log.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration.int8.log"]  # job files cleaned up
