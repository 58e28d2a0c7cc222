"""Calibration: FP16 and INT8 (Q/DQ) ONNX of a bundle's graph, proven against FP32 on held-out frames.

Works on ONNX files only and never imports ``vitdeploy.models`` (DESIGN.md). Entry point:
:func:`calibrate_bundle`; the pieces (data readers, the INT8 recipe, the FP16 conversion, the
accuracy report, sensitivity analysis) are in the submodules.
"""

from vitdeploy.calibration.calibrate import CalibrationOptions, CalibrationResult, calibrate_bundle
from vitdeploy.calibration.data import CalibrationData, DataKind, load_calibration_data
from vitdeploy.calibration.int8 import CalibrationMethod, HighPrecision, Int8Recipe, Placement
from vitdeploy.calibration.layers import Layer, LayerKind, find_layers
from vitdeploy.calibration.modelopt_runner import CalibrationError
from vitdeploy.calibration.report import AccuracyReport, TensorAgreement
from vitdeploy.heads import TaskAgreement

__all__ = [
    "AccuracyReport",
    "CalibrationData",
    "CalibrationError",
    "CalibrationMethod",
    "CalibrationOptions",
    "CalibrationResult",
    "DataKind",
    "HighPrecision",
    "Int8Recipe",
    "Layer",
    "LayerKind",
    "Placement",
    "TaskAgreement",
    "TensorAgreement",
    "calibrate_bundle",
    "find_layers",
    "load_calibration_data",
]
