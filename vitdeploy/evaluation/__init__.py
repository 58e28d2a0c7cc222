"""Task-level accuracy measures shared by calibration and ``vitdeploy eval``."""
