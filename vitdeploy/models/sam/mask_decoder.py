"""SAM's mask decoder: output tokens + prompt tokens + image embedding -> masks and their IoU.

An IoU token and ``num_multimask_outputs + 1`` mask tokens are prepended to the prompt tokens
and run through the two-way transformer with the image. Each mask token's output drives a small
hypernetwork MLP whose result is dotted with the 4x upscaled image embedding, giving one
low-resolution mask per token; the IoU token predicts each mask's quality. Mask 0 is the
single-mask answer (for unambiguous prompts), masks 1..3 the multimask answers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitdeploy.models.sam.common import LayerNorm2d


class MLP(nn.Module):
    """``num_layers`` linears with ReLU between: (..., input_dim) -> (..., output_dim)."""

    def __init__(self, *, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int,
                 sigmoid_output: bool = False):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip(dims[:-1], dims[1:], strict=True))
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return torch.sigmoid(x) if self.sigmoid_output else x


class MaskDecoder(nn.Module):
    def __init__(self, *, transformer_dim: int, transformer: nn.Module, num_multimask_outputs: int = 3,
                 activation: type[nn.Module] = nn.GELU, iou_head_depth: int = 3, iou_head_hidden_dim: int = 256):
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(input_dim=transformer_dim, hidden_dim=transformer_dim, output_dim=transformer_dim // 8, num_layers=3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(input_dim=transformer_dim, hidden_dim=iou_head_hidden_dim,
                                       output_dim=self.num_mask_tokens, num_layers=iou_head_depth)

    def forward(self, *, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse_prompt_embeddings: torch.Tensor,
                dense_prompt_embeddings: torch.Tensor, multimask_output: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks (B, 3 or 1, 4h, 4w) logits and their predicted IoU (B, 3 or 1); see ``predict_masks``."""
        masks, iou_pred = self.predict_masks(image_embeddings=image_embeddings, image_pe=image_pe,
                                             sparse_prompt_embeddings=sparse_prompt_embeddings,
                                             dense_prompt_embeddings=dense_prompt_embeddings)
        keep = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, keep], iou_pred[:, keep]

    def predict_masks(self, *, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                      sparse_prompt_embeddings: torch.Tensor,
                      dense_prompt_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All mask tokens' masks.

        image_embeddings: (B or 1, C, h, w), one per prompt set (1: shared by all B prompt sets);
        image_pe: (1, C, h, w); sparse_prompt_embeddings: (B, N, C); dense_prompt_embeddings:
        (B or 1, C, h, w) -> masks (B, num_mask_tokens, 4h, 4w) logits, iou_pred (B, num_mask_tokens).
        """
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)

        src = image_embeddings + dense_prompt_embeddings
        if src.shape[0] != batch:  # one image, several prompt sets
            src = src.expand(batch, -1, -1, -1)
        b, c, h, w = src.shape

        hs, src = self.transformer(src, image_pe, tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1:1 + self.num_mask_tokens, :]

        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # (B, num_mask_tokens, C/8)
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)
        return masks, self.iou_prediction_head(iou_token_out)
