"""The export graph of a rig-level model: a whole frame set and its camera geometry in, one answer out.

Inputs: ``images`` (cameras, 3, H, W), ``intrinsics`` (cameras, 3, 3) and ``cam_to_ego``
(cameras, 4, 4), all float32 and sharing the dynamic ``cameras`` axis (the backend contract
refuses a feed whose inputs disagree on it). Outputs have a fixed leading axis of 1: one frame
set. The geometry is an input, not a constant, so a re-calibrated car needs no re-export; what
the geometry costs per frame (the ray encoding of every patch) is measured in the head's notes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vitdeploy.bundle.manifest import CAMERA_AXIS, Preprocessing, TensorSpec
from vitdeploy.data.geometry import CameraGeometry, geometry_feed
from vitdeploy.data.rig import rig_cameras
from vitdeploy.data.scenes import SceneGenerator
from vitdeploy.errors import ExportError
from vitdeploy.exporter.graphs import GraphSpec, ParityCase
from vitdeploy.heads import Head
from vitdeploy.models.rig_model import RigPerceptionModel
from vitdeploy.runtime.preprocess import preprocess_frames

#: Cameras of the synthetic rig, whose geometry a rig graph is exported and parity-checked with.
SYNTHETIC_RIG_CAMERAS = 6


class RigOutputsAsTuple(nn.Module):
    """ONNX export wants positional outputs; the model returns a dict in ``output_names`` order."""

    def __init__(self, model: RigPerceptionModel):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        out = self.model(images, intrinsics, cam_to_ego)
        return tuple(out[name] for name in self.model.output_names)


def synthetic_rig_feed(*, cameras: int, image_size: tuple[int, int], preprocessing: Preprocessing,
                       seed: int = 0, tick: int = 0) -> dict[str, np.ndarray]:
    """A real frame set of the synthetic rig with its geometry, as the graph's feed."""
    gen = SceneGenerator(size=image_size, cameras=cameras, seed=seed, with_masks=False)
    images, _ = preprocess_frames([f.image for f in gen.frame_set(tick)], preprocessing)
    geometry = [CameraGeometry.from_rig_camera(c) for c in gen.scene_at(tick)[2]]
    return {"images": images, **geometry_feed(geometry, image_size=image_size)}


def export_geometry(*, image_size: tuple[int, int], cameras: int) -> list[CameraGeometry]:
    """The geometry a rig graph is exported with and records in its manifest: the synthetic rig's
    first ``cameras`` cameras (its views repeat beyond six) at the model's input size."""
    rig = [CameraGeometry.from_rig_camera(c) for c in rig_cameras(image_size, count=SYNTHETIC_RIG_CAMERAS)]
    return [rig[i % len(rig)] for i in range(cameras)]


def rig_export_head(head: Head, *, image_size: tuple[int, int], cameras: int) -> Head:
    """``head`` recording the geometry it is exported with (:func:`export_geometry`)."""
    return head.with_geometry([g.to_dict() for g in export_geometry(image_size=image_size, cameras=cameras)])


def rig_graph_spec(model: RigPerceptionModel, *, image_size: tuple[int, int], max_cameras: int,
                   preprocessing: Preprocessing, head: Head | None = None) -> GraphSpec:
    """``model`` gets its position embedding baked for ``image_size`` (the export-only step); its
    outputs must be the ones ``head`` declares (when given), and their meanings are the head's.

    Parity runs on random images with the synthetic rig's geometry at 1 and ``max_cameras``
    cameras, and on a rendered frame set of the synthetic rig.
    """
    if preprocessing.fused:
        raise ExportError("fused preprocessing is not available for rig graphs yet; export without it")
    if not 1 <= max_cameras <= model.max_cameras:
        raise ExportError(f"max_cameras {max_cameras}: this rig model has {model.max_cameras} camera slots; "
                          f"use 1..{model.max_cameras}")
    model.encoder.set_grid(model.encoder.grid_for(*image_size))
    wrapper = RigOutputsAsTuple(model).eval()
    h, w = image_size

    def make_inputs(dims: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        c = dims.get(CAMERA_AXIS, 2)
        return {"images": rng.standard_normal((c, 3, h, w)).astype(np.float32),
                **geometry_feed(export_geometry(image_size=image_size, cameras=c), image_size=image_size)}

    feed = make_inputs({CAMERA_AXIS: 1}, np.random.default_rng(0))
    with torch.no_grad():
        outs = wrapper(*(torch.from_numpy(v) for v in feed.values()))
    inputs = [
        TensorSpec("images", "float32", [CAMERA_AXIS, 3, h, w], "normalised camera images of one frame set, RGB, NCHW"),
        TensorSpec("intrinsics", "float32", [CAMERA_AXIS, 3, 3],
                   "per camera the pinhole matrix K (fx, 0, cx; 0, fy, cy; 0, 0, 1) in model-input pixels"),
        TensorSpec("cam_to_ego", "float32", [CAMERA_AXIS, 4, 4], "per camera, camera frame -> ego frame, metres"),
    ]
    shapes = {name: list(o.shape) for name, o in zip(model.output_names, outs, strict=True)}
    if head is not None:
        head.check_outputs(shapes)
    outputs = [TensorSpec(name, "float32", shape, head.meaning(name) if head is not None else "")
               for name, shape in shapes.items()]
    cams = min(max_cameras, SYNTHETIC_RIG_CAMERAS)
    rendered = synthetic_rig_feed(cameras=cams, image_size=image_size, preprocessing=preprocessing)
    return GraphSpec(
        name="model", file="model.onnx", module=wrapper, inputs=inputs, outputs=outputs,
        trace_dims={CAMERA_AXIS: 2}, dim_ranges={CAMERA_AXIS: (1, max_cameras)},
        make_inputs=make_inputs, parity_cases=[ParityCase(f"synthetic-rig@cameras={cams}", rendered)],
    )
