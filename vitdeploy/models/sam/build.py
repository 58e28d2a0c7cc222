"""SAM variants as small configs in a plain dict, and the builder (the zoo's ``sam-*`` cards use them).

``vit_b``/``vit_l``/``vit_h`` are the official sizes (their checkpoints load with no missing or
unexpected keys); ``test`` is a tiny model with the same structure that exports in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from vitdeploy.errors import ModelNotFoundError
from vitdeploy.models.sam.image_encoder import ImageEncoderViT
from vitdeploy.models.sam.mask_decoder import MaskDecoder
from vitdeploy.models.sam.prompt_encoder import PromptEncoder
from vitdeploy.models.sam.sam import Sam
from vitdeploy.models.sam.transformer import TwoWayTransformer


@dataclass(frozen=True)
class SamConfig:
    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    image_size: int = 1024  # pixels; images are resized (longest side) and padded to this square
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_num_heads: int = 8
    decoder_mlp_dim: int = 2048
    iou_head_hidden_dim: int = 256
    num_multimask_outputs: int = 3

    @property
    def image_embedding_size(self) -> tuple[int, int]:
        grid = self.image_size // self.patch_size
        return grid, grid


SAM_VARIANTS: dict[str, SamConfig] = {
    "vit_b": SamConfig(encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12,
                       encoder_global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": SamConfig(encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16,
                       encoder_global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SamConfig(encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
                       encoder_global_attn_indexes=(7, 15, 23, 31)),
    # 16x16 token grid; window 5 makes the windowed blocks pad (16 -> 20) as the real ones do (64 -> 70).
    "test": SamConfig(encoder_embed_dim=64, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=(1,),
                      image_size=256, window_size=5, prompt_embed_dim=32, decoder_num_heads=2, decoder_mlp_dim=64,
                      iou_head_hidden_dim=32),
}


def build_sam(variant: str, *, fused_attention: bool = True) -> Sam:
    """A SAM of the named variant with fresh weights, in eval mode."""
    config = SAM_VARIANTS.get(variant)
    if config is None:
        raise ModelNotFoundError(f"unknown SAM variant {variant!r}; choose one of: {', '.join(SAM_VARIANTS)}")
    image_size = config.image_size
    dim = config.prompt_embed_dim
    model = Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size, patch_size=config.patch_size, embed_dim=config.encoder_embed_dim,
            depth=config.encoder_depth, num_heads=config.encoder_num_heads, mlp_ratio=4.0, out_chans=dim,
            qkv_bias=True, use_rel_pos=True, window_size=config.window_size,
            global_attn_indexes=config.encoder_global_attn_indexes, fused_attention=fused_attention,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=config.image_embedding_size,
            input_image_size=(image_size, image_size), mask_in_chans=config.mask_in_chans,
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=dim, num_multimask_outputs=config.num_multimask_outputs,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, num_heads=config.decoder_num_heads,
                                          mlp_dim=config.decoder_mlp_dim, fused_attention=fused_attention),
            iou_head_depth=3, iou_head_hidden_dim=config.iou_head_hidden_dim,
        ),
    )
    return model.eval()
