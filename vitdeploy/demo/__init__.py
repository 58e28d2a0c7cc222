"""`vitdeploy demo`: the whole job on a laptop CPU — export, FP16/INT8, a 6-camera rig, accuracy."""

from vitdeploy.demo.job import DemoResult, PrecisionRow, run_demo

__all__ = ["DemoResult", "PrecisionRow", "run_demo"]
