"""The export graph of a ViT + head model (cls, cait, detr, mask, tab): images in, raw tensors out."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from vitdeploy.bundle.manifest import CAMERA_AXIS, Preprocessing, TensorSpec
from vitdeploy.data.frames import sample_photo
from vitdeploy.exporter.fused_preprocess import FusedPreprocess, WithFusedPreprocess
from vitdeploy.exporter.graphs import GraphSpec, ParityCase
from vitdeploy.heads import Head
from vitdeploy.runtime.preprocess import preprocess_frames


class OutputsAsTuple(nn.Module):
    """ONNX export wants positional outputs; the model returns a dict in ``output_names`` order."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images)
        return tuple(out[name] for name in self.model.output_names)


def perception_graph_spec(model: nn.Module, *, head: Head, image_size: tuple[int, int], max_cameras: int,
                          preprocessing: Preprocessing) -> GraphSpec:
    """``model`` gets its position embedding baked for ``image_size`` (the export-only step); its
    outputs must be the ones ``head`` declares (a ``BundleError`` lists both otherwise), and their
    meanings are the head's.

    With ``preprocessing.fused`` the graph takes raw uint8 frames (cameras, Hs, Ws, 3) instead of
    normalised images, and does the preprocessing itself (``fused_preprocess``).
    """
    model.encoder.set_grid(model.encoder.grid_for(*image_size))
    return image_graph_spec(OutputsAsTuple(model).eval(), output_names=model.output_names, head=head,
                            image_size=image_size, max_cameras=max_cameras, preprocessing=preprocessing)


def image_graph_spec(wrapper: nn.Module, *, output_names: tuple[str, ...], head: Head, image_size: tuple[int, int],
                     max_cameras: int, preprocessing: Preprocessing) -> GraphSpec:
    """The graph of ``wrapper`` (images (B, 3, H, W) -> a tuple of tensors named ``output_names``),
    whose outputs must be ``head``'s; see ``perception_graph_spec``."""
    h, w = image_size
    with torch.no_grad():
        outs = wrapper(torch.zeros(2, 3, h, w))
    shapes = {name: [CAMERA_AXIS, *list(o.shape[1:])] for name, o in zip(output_names, outs, strict=True)}
    head.check_outputs(shapes)
    outputs = [TensorSpec(name, "float32", shape, head.meaning(name)) for name, shape in shapes.items()]
    photo = sample_photo()
    photos = [photo, photo[:, ::-1].copy()]

    if preprocessing.fused:
        sh, sw = preprocessing.source_size
        wrapper = WithFusedPreprocess(FusedPreprocess(preprocessing), wrapper).eval()
        order = preprocessing.source_channel_order.upper()
        inputs = [TensorSpec("frames", "uint8", [CAMERA_AXIS, sh, sw, 3],
                             f"raw camera frames, {order}, NHWC; preprocessing runs in the graph")]

        def make_inputs(dims: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
            return {"frames": rng.integers(0, 256, (dims.get(CAMERA_AXIS, 2), sh, sw, 3), dtype=np.uint8)}

        raw = np.stack([cv2.resize(p, (sw, sh), interpolation=cv2.INTER_AREA) for p in photos])
        photo_case = {"frames": raw[..., ::-1].copy() if order == "BGR" else raw}
    else:
        inputs = [TensorSpec("images", "float32", [CAMERA_AXIS, 3, h, w], "normalised camera images, RGB, NCHW")]

        def make_inputs(dims: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
            return {"images": rng.standard_normal((dims.get(CAMERA_AXIS, 2), 3, h, w)).astype(np.float32)}

        photo_case = {"images": preprocess_frames(photos, preprocessing)[0]}
    return GraphSpec(
        name="model", file="model.onnx", module=wrapper, inputs=inputs, outputs=outputs,
        trace_dims={CAMERA_AXIS: 2}, dim_ranges={CAMERA_AXIS: (1, max_cameras)},
        make_inputs=make_inputs, parity_cases=[ParityCase("photo@cameras=2", photo_case)],
    )
