"""Synthetic labelled driving data: multi-camera scenes rendered from a seed, and COCO files.

``SceneGenerator`` renders frames (:mod:`vitdeploy.data.scenes`); ``write_coco``/``load_coco``
put them on disk and read COCO detection files back (:mod:`vitdeploy.data.coco`).
"""

from vitdeploy.data.coco import CocoDataset, CocoImage, load_coco, write_coco
from vitdeploy.data.scenes import CAMERA_NAMES, Annotation, Lighting, SceneGenerator, SynthFrame

__all__ = ["CAMERA_NAMES", "Annotation", "CocoDataset", "CocoImage", "Lighting", "SceneGenerator", "SynthFrame",
           "load_coco", "write_coco"]
