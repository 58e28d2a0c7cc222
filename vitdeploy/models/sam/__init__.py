"""Segment Anything (SAM): the official architecture, in files of one idea each."""

from vitdeploy.models.sam.build import SAM_VARIANTS, SamConfig, build_sam
from vitdeploy.models.sam.sam import Sam

__all__ = ["SAM_VARIANTS", "Sam", "SamConfig", "build_sam"]
