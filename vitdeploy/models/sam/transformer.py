"""SAM's two-way transformer: prompt tokens and image tokens attend to each other.

Each layer runs (1) self-attention of the tokens, (2) tokens -> image cross-attention, (3) an MLP
on the tokens and (4) image -> tokens cross-attention, so both sides are updated; a final
tokens -> image attention closes the stack. Cross-attention projects to ``embedding_dim /
attention_downsample_rate`` channels to keep the 4096-token image side cheap.
"""

from __future__ import annotations

import torch
from torch import nn

from vitdeploy.models.attention import attend
from vitdeploy.models.sam.common import MLPBlock


class Attention(nn.Module):
    """Multi-head attention whose projections may shrink the channels (``downsample_rate``).

    ``fused_attention`` picks scaled_dot_product_attention or the explicit matmul-softmax; the
    parameter names are the official ones (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``).
    """

    def __init__(self, embedding_dim: int, *, num_heads: int, downsample_rate: int = 1, fused_attention: bool = True):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"internal dim {self.internal_dim} is not divisible by num_heads {num_heads}")
        self.fused_attention = fused_attention
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _separate_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: (B, Lq, embedding_dim), k/v: (B, Lk, embedding_dim) -> (B, Lq, embedding_dim)."""
        b, lq, _ = q.shape
        out = attend(self._separate_heads(self.q_proj(q)), self._separate_heads(self.k_proj(k)),
                     self._separate_heads(self.v_proj(v)), fused=self.fused_attention)
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, self.internal_dim))


class TwoWayAttentionBlock(nn.Module):
    """One layer of the two-way transformer (post-norm, as in the official model)."""

    def __init__(self, *, embedding_dim: int, num_heads: int, mlp_dim: int = 2048,
                 activation: type[nn.Module] = nn.ReLU, attention_downsample_rate: int = 2,
                 skip_first_layer_pe: bool = False, fused_attention: bool = True):
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads=num_heads, fused_attention=fused_attention)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads=num_heads,
                                                   downsample_rate=attention_downsample_rate,
                                                   fused_attention=fused_attention)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim=embedding_dim, mlp_dim=mlp_dim, act=activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads=num_heads,
                                                   downsample_rate=attention_downsample_rate,
                                                   fused_attention=fused_attention)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """queries/query_pe: (B, N, C) tokens; keys: (B, HW, C), key_pe: (1 or B, HW, C) image."""
        if self.skip_first_layer_pe:
            # The first layer's queries are the prompt embeddings themselves, which already hold
            # their positions; SAM replaces them instead of adding a residual.
            queries = self.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q=q, k=q, v=queries)
        queries = self.norm1(queries)

        q = queries + query_pe
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q=q, k=k, v=keys))

        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        k = keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(q=k, k=q, v=queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Decoder that updates prompt tokens and image tokens together.

    ``forward(image_embedding (B, C, h, w), image_pe (1 or B, C, h, w), point_embedding (B, N, C))``
    returns (tokens (B, N, C), image tokens (B, h*w, C)).
    """

    def __init__(self, *, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int,
                 activation: type[nn.Module] = nn.ReLU, attention_downsample_rate: int = 2,
                 fused_attention: bool = True):
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim=embedding_dim, num_heads=num_heads, mlp_dim=mlp_dim,
                                 activation=activation, attention_downsample_rate=attention_downsample_rate,
                                 skip_first_layer_pe=i == 0, fused_attention=fused_attention)
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads=num_heads,
                                                   downsample_rate=attention_downsample_rate,
                                                   fused_attention=fused_attention)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor,
                point_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = image_embedding.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries=queries, keys=keys, query_pe=point_embedding, key_pe=key_pe)
        q = queries + point_embedding
        k = keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q=q, k=k, v=keys))
        return queries, keys
