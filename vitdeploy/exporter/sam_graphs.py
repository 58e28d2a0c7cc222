"""The two export graphs of Segment Anything: ``image_encoder`` and ``prompt_decoder``.

The image encoder runs once per camera frame; the prompt decoder runs per prompt against the
stored image embedding, so they are separate graphs (and separate engines). What the official
``segment_anything/utils/onnx.py`` does to make the decoder traceable is done here, in export
wrappers, so the model code stays what it is for training:

* points and box corners arrive as one (points, 2) list with float labels (1 foreground,
  0 background, 2/3 box top-left/bottom-right, -1 padding) and are embedded with arithmetic on
  label masks instead of boolean indexing (which exports as NonZero/ScatterND);
* the dense prompt is always ``no_mask_embed`` (no ``mask_input``/``has_mask_input``) and the
  grid's positional encoding is a constant, not recomputed per call;
* there is no ``orig_im_size`` input: TensorRT treats such a tensor as a shape tensor and the build
  breaks, so the graph returns the 4 low-res mask logits and upscaling/cropping/selecting the best
  mask is post-processing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vitdeploy.bundle.manifest import CAMERA_AXIS, Preprocessing, TensorSpec
from vitdeploy.errors import ExportError
from vitdeploy.exporter.graphs import GraphSpec, ParityCase
from vitdeploy.heads import Head
from vitdeploy.models.sam.sam import PIXEL_MEAN, PIXEL_STD, Sam

#: The symbolic name of the prompt-point axis of the decoder graph.
POINTS_AXIS = "points"

#: Label values of ``point_labels``.
PADDING, BACKGROUND, FOREGROUND, BOX_TOP_LEFT, BOX_BOTTOM_RIGHT = -1.0, 0.0, 1.0, 2.0, 3.0


class ImageEncoderGraph(nn.Module):
    """images (cameras, 3, S, S) normalised and padded -> (image_embeddings (cameras, C, h, w),)."""

    def __init__(self, model: Sam):
        super().__init__()
        self.image_encoder = model.image_encoder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.image_encoder(images),)


class PromptDecoderGraph(nn.Module):
    """One prompt set per camera against that camera's image embedding.

    image_embeddings (cameras, C, h, w); point_coords (cameras, points, 2) as (x, y) pixels of the
    S x S model input; point_labels (cameras, points) float -> iou_predictions (cameras, M) and
    low_res_masks (cameras, M, 4h, 4w) logits, M = 1 + num_multimask_outputs (mask 0 is the
    single-mask answer).
    """

    def __init__(self, model: Sam):
        super().__init__()
        prompts = model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        self.pe_layer = prompts.pe_layer
        self.point_embeddings = prompts.point_embeddings
        self.not_a_point_embed = prompts.not_a_point_embed
        self.no_mask_embed = prompts.no_mask_embed
        h, w = prompts.input_image_size
        with torch.no_grad():
            image_pe = prompts.get_dense_pe()
        # Constants of the graph: they depend on no input, so compute them once here.
        self.register_buffer("image_pe", image_pe, persistent=False)
        self.register_buffer("pixels_to_unit", torch.tensor([1.0 / w, 1.0 / h]), persistent=False)

    def embed_points(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
        """(cameras, points, 2) pixels and (cameras, points) labels -> (cameras, points, C)."""
        coords = (point_coords + 0.5) * self.pixels_to_unit  # pixel centres, in 0..1
        embedding = self.pe_layer.encode_normalized(coords)
        labels = point_labels.unsqueeze(-1)
        is_padding = (labels == PADDING).to(embedding.dtype)
        embedding = embedding * (1.0 - is_padding) + self.not_a_point_embed.weight * is_padding
        for kind, kind_embed in enumerate(self.point_embeddings):
            embedding = embedding + kind_embed.weight * (labels == float(kind)).to(embedding.dtype)
        return embedding

    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor,
                point_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sparse = self.embed_points(point_coords, point_labels)
        dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1)  # broadcast over cameras and the grid
        masks, iou = self.mask_decoder.predict_masks(image_embeddings=image_embeddings, image_pe=self.image_pe,
                                                     sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
        return iou, masks


def sam_preprocessing(model: Sam) -> Preprocessing:
    """SAM's input: RGB, ImageNet mean/std, longest side resized to S and padded bottom/right.

    SAM pads with zeros after normalising, i.e. with the mean colour; ``pad_value`` is one grey
    level for all channels, so the mean's middle channel (116) is the closest the manifest can say.
    """
    s = model.image_encoder.img_size
    return Preprocessing(image_size=(s, s), mean=tuple(m / 255.0 for m in PIXEL_MEAN),
                         std=tuple(d / 255.0 for d in PIXEL_STD), resize="longest_side", pad_value=116)


def _prompt_case(name: str, embeddings: np.ndarray, prompts: list[list[tuple[float, float, float]]]) -> ParityCase:
    """prompts: per camera, a list of (x, y, label); all cameras have the same number of points."""
    coords = np.asarray([[(x, y) for x, y, _ in p] for p in prompts], np.float32)
    labels = np.asarray([[lab for _, _, lab in p] for p in prompts], np.float32)
    return ParityCase(name, {"image_embeddings": embeddings, "point_coords": coords, "point_labels": labels})


def _decoder_parity_cases(*, cameras: int, embedding_shape: tuple[int, int, int], image_size: int,
                          max_points: int, rng: np.random.Generator) -> list[ParityCase]:
    """1, 2 and 5 clicks (plus SAM's padding point, as its predictor adds when there is no box),
    a box as two corner points, and a box with a click."""
    embeddings = rng.standard_normal((cameras, *embedding_shape)).astype(np.float32)
    s = float(image_size)

    def clicks(n: int) -> list[tuple[float, float, float]]:
        xy = rng.uniform(0, s, size=(n, 2))
        labels = [FOREGROUND] + [float(v) for v in rng.integers(0, 2, size=n - 1)]
        return [(float(x), float(y), lab) for (x, y), lab in zip(xy, labels, strict=True)]

    def box() -> list[tuple[float, float, float]]:
        x0, y0 = rng.uniform(0, s / 2, size=2)
        x1, y1 = rng.uniform(s / 2, s, size=2)
        return [(float(x0), float(y0), BOX_TOP_LEFT), (float(x1), float(y1), BOX_BOTTOM_RIGHT)]

    pad = [(0.0, 0.0, PADDING)]
    cases = [_prompt_case(f"{n}_points@cameras={cameras}", embeddings, [clicks(n) + pad for _ in range(cameras)])
             for n in (1, 2, 5)]
    cases.append(_prompt_case(f"box@cameras={cameras}", embeddings, [box() for _ in range(cameras)]))
    cases.append(_prompt_case(f"point_and_box@cameras={cameras}", embeddings,
                              [clicks(1) + box() for _ in range(cameras)]))
    return [c for c in cases if c.feeds["point_labels"].shape[1] <= max_points]


def sam_graph_specs(model: Sam, *, head: Head, max_cameras: int, max_points: int = 16) -> list[GraphSpec]:
    """The ``image_encoder`` and ``prompt_decoder`` graphs of ``model`` (in eval mode); their outputs
    are the ``sam`` ``head``'s (checked against the model's sizes).

    ``max_points`` counts every row of ``point_coords``: clicks, box corners and padding.
    """
    if not isinstance(model, Sam):
        raise ExportError(f"sam_graph_specs needs a Segment Anything model, got {type(model).__name__}")
    if max_cameras < 1:
        raise ExportError(f"max_cameras must be >= 1, got {max_cameras}")
    if max_points < 2:
        raise ExportError(f"max_points must be >= 2 (a click and SAM's padding point, or a box's two corners), "
                          f"got {max_points}")
    model = model.eval()
    s = model.image_encoder.img_size
    dim = model.prompt_encoder.embed_dim
    eh, ew = model.prompt_encoder.image_embedding_size
    mh, mw = model.prompt_encoder.mask_input_size
    n_masks = model.mask_decoder.num_mask_tokens
    head.check_outputs({"image_embeddings": [CAMERA_AXIS, dim, eh, ew], "iou_predictions": [CAMERA_AXIS, n_masks],
                        "low_res_masks": [CAMERA_AXIS, n_masks, mh, mw]})
    # torch.export specialises an axis traced at size 1, so trace at 2 cameras and 3 points (a size
    # unlike the cameras', so a graph that mixed the two axes up would fail parity).
    trace_cameras = min(2, max_cameras)

    def encoder_inputs(dims: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"images": rng.standard_normal((dims[CAMERA_AXIS], 3, s, s)).astype(np.float32)}

    def decoder_inputs(dims: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        cameras, points = dims[CAMERA_AXIS], dims[POINTS_AXIS]
        coords = rng.uniform(0, s, size=(cameras, points, 2)).astype(np.float32)
        labels = rng.integers(0, 2, size=(cameras, points)).astype(np.float32)
        if points >= 2:  # the last row is SAM's padding point
            coords[:, -1] = 0.0
            labels[:, -1] = PADDING
        return {"image_embeddings": rng.standard_normal((cameras, dim, eh, ew)).astype(np.float32),
                "point_coords": coords, "point_labels": labels}

    encoder = GraphSpec(
        name="image_encoder", file="image_encoder.onnx", module=ImageEncoderGraph(model).eval(),
        inputs=[TensorSpec("images", "float32", [CAMERA_AXIS, 3, s, s],
                           "RGB camera images, normalised with SAM's mean/std; longest side resized to "
                           f"{s} and zero-padded (after normalising) at the bottom/right")],
        outputs=[head.output("image_embeddings")],
        trace_dims={CAMERA_AXIS: trace_cameras}, dim_ranges={CAMERA_AXIS: (1, max_cameras)},
        make_inputs=encoder_inputs,
    )
    decoder = GraphSpec(
        name="prompt_decoder", file="prompt_decoder.onnx", module=PromptDecoderGraph(model).eval(),
        inputs=[
            TensorSpec("image_embeddings", "float32", [CAMERA_AXIS, dim, eh, ew], "the image_encoder's output"),
            TensorSpec("point_coords", "float32", [CAMERA_AXIS, POINTS_AXIS, 2],
                       f"prompt points as (x, y) pixels of the {s}x{s} model input (after resize and pad)"),
            TensorSpec("point_labels", "float32", [CAMERA_AXIS, POINTS_AXIS],
                       "1 foreground, 0 background, 2 box top-left, 3 box bottom-right, -1 padding; "
                       "append one padding point (0, 0, -1) when there is no box, as SAM's predictor does"),
        ],
        outputs=[head.output("iou_predictions"), head.output("low_res_masks")],
        trace_dims={CAMERA_AXIS: trace_cameras, POINTS_AXIS: min(3, max_points)},
        dim_ranges={CAMERA_AXIS: (1, max_cameras), POINTS_AXIS: (1, max_points)},
        make_inputs=decoder_inputs,
        parity_cases=_decoder_parity_cases(cameras=trace_cameras, embedding_shape=(dim, eh, ew), image_size=s,
                                           max_points=max_points, rng=np.random.default_rng(0)),
    )
    return [encoder, decoder]
