"""The camera geometry a rig-level model takes as graph inputs, built once per rig on the host.

A rig-level head (``Head.geometry_inputs``: ``intrinsics`` (cameras, 3, 3) and ``cam_to_ego``
(cameras, 4, 4)) needs each camera's calibration in model-input pixels. The rig file gives it per
camera in the pixels of the camera's own images (``[cameras.geometry]``); here the intrinsics
follow the frame through the manifest's preprocessing: scaled by the resize and, for a letterbox,
shifted by the padding (cx + left, cy + top). The feed is the same for every frame set of a run,
so it is computed once.

Camera i of the feed is the model's learned camera i, so the rig must have the cameras the bundle
was exported for, in that order. A camera without geometry is refused unless the rig says
``[model] geometry = "exported"``: then it takes the geometry the bundle recorded at export (the
synthetic rig's), which is right only for a car built like it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from vitdeploy.bundle.manifest import Manifest, Preprocessing
from vitdeploy.data.geometry import CameraGeometry
from vitdeploy.errors import DataError, RigConfigError
from vitdeploy.heads import Head, head_for
from vitdeploy.runtime.preprocess import geometry
from vitdeploy.runtime.rig import Camera, GeometrySource, Rig


def model_input_geometry(camera: CameraGeometry, preprocessing: Preprocessing) -> CameraGeometry:
    """``camera`` (intrinsics in pixels of its own ``image_size``) as the model input sees it after
    ``preprocessing``'s resize and padding."""
    g = geometry(tuple(camera.image_size), preprocessing)
    (fh, fw), (nh, nw) = g.frame_size, g.resized
    sx, sy = nw / fw, nh / fh
    return replace(camera, image_size=tuple(preprocessing.image_size), fx=camera.fx * sx, fy=camera.fy * sy,
                   cx=camera.cx * sx + g.left, cy=camera.cy * sy + g.top)


def geometry_inputs(cameras: Sequence[CameraGeometry], preprocessing: Preprocessing) -> dict[str, np.ndarray]:
    """``intrinsics`` (C, 3, 3) in model-input pixels and ``cam_to_ego`` (C, 4, 4) metres, float32,
    in the order of ``cameras``."""
    if not cameras:
        raise DataError("no cameras: a rig graph needs the geometry of at least one camera")
    seen = [model_input_geometry(c, preprocessing) for c in cameras]
    return {"intrinsics": np.stack([c.intrinsic_matrix() for c in seen]).astype(np.float32),
            "cam_to_ego": np.stack([c.cam_to_ego() for c in seen]).astype(np.float32)}


def exported_geometry(head: Head) -> list[CameraGeometry]:
    """The cameras a rig-level bundle was exported with (its manifest's record)."""
    return [CameraGeometry.from_dict(c) for c in head.exported_geometry()]


def rig_inputs(rig: Rig, manifest: Manifest) -> dict[str, np.ndarray]:
    """The graph inputs besides the images that stay the same for every frame set of ``rig``: the
    camera geometry of a rig-level model; none for a per-camera model.

    Raises a ``RigConfigError`` for a rig whose camera count is not the one the bundle was exported
    for, and for cameras without geometry (unless ``[model] geometry = "exported"``)."""
    head = head_for(manifest)
    if not head.geometry_inputs:
        return {}
    exported = exported_geometry(head)
    wanted = len(exported) or manifest.max_cameras
    if len(rig.cameras) != wanted:
        order = f" ({', '.join(g.name for g in exported)})" if exported else ""
        raise RigConfigError(f"the rig has {len(rig.cameras)} cameras, but the {head.kind} bundle of {manifest.model} "
                             f"answers for a rig of {wanted}{order}: camera i is the model's learned camera i; give "
                             f"a rig with those {wanted} cameras in that order")
    cameras = [_camera_geometry(c, slot, exported, rig.model.geometry) for c, slot in zip(rig.cameras, range(wanted),
                                                                                           strict=True)]
    return geometry_inputs(cameras, manifest.preprocessing)


def _camera_geometry(camera: Camera, slot: int, exported: list[CameraGeometry],
                     source: GeometrySource) -> CameraGeometry:
    if camera.geometry is not None:
        return camera.geometry
    if source is GeometrySource.EXPORTED and exported:
        return exported[slot]
    raise RigConfigError(f"camera {camera.name!r} has no geometry, and the bundle's rig-level model takes every "
                         "camera's intrinsics and position on the car; add a [cameras.geometry] table for it (see "
                         "docs/rig.example.toml), or set [model] geometry = \"exported\" to use the synthetic rig's "
                         "the bundle was exported with")
