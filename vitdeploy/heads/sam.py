"""``sam``: Segment Anything, an image encoder and a prompt decoder. Outputs and their meaning only:
run, eval and calibration need prompts per camera, which vitdeploy does not feed yet."""

from __future__ import annotations

from vitdeploy.bundle.manifest import CAMERA_AXIS, TensorSpec
from vitdeploy.heads.base import Head


class SegmentAnythingHead(Head):
    """``image_embeddings`` (image encoder); ``iou_predictions`` and ``low_res_masks`` (prompt
    decoder), sized from ``config`` (``prompt_embed_dim``, ``image_embedding_size``,
    ``mask_input_size``, ``multimask_outputs``)."""

    kind = "sam"
    runnable = False
    prompted = True

    def outputs(self) -> list[TensorSpec]:
        c = self.config
        s = self.image_size[0]
        eh, ew = c.get("image_embedding_size", ("embedding_height", "embedding_width"))
        mh, mw = c.get("mask_input_size", ("mask_height", "mask_width"))
        masks = int(c["multimask_outputs"]) + 1 if "multimask_outputs" in c else "masks"
        return [
            TensorSpec("image_embeddings", "float32", [CAMERA_AXIS, c.get("prompt_embed_dim", "channels"), eh, ew],
                       "image embedding per camera; the prompt_decoder's input"),
            TensorSpec("iou_predictions", "float32", [CAMERA_AXIS, masks],
                       "predicted IoU of each mask; mask 0 is the single-mask output, 1.. the multimask outputs"),
            TensorSpec("low_res_masks", "float32", [CAMERA_AXIS, masks, mh, mw],
                       f"mask logits (> 0 is inside) on the {mh}x{mw} grid of the padded model input; "
                       f"upscale to {s}x{s}, crop the padding and resize to the frame"),
        ]

    def why_not(self, stage: str) -> str:
        return ("SAM is an image encoder + prompt decoder that needs point or box prompts per camera, which "
                "vitdeploy does not feed: not supported yet; build its engines from the FP32 ONNX and prompt it "
                "from your own code")
