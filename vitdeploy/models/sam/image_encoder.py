"""SAM's image encoder: a ViTDet-style ViT with windowed and global attention, decomposed
relative positions and a convolutional neck.

``images`` (B, 3, S, S), already normalised and padded to the square ``img_size`` S, become
``image_embeddings`` (B, out_chans, S/p, S/p). Tokens stay as a (B, H, W, C) grid throughout so
that windows can be cut out of it; most blocks attend inside ``window_size`` x ``window_size``
windows (the grid is zero-padded up to a multiple of the window), the blocks listed in
``global_attn_indexes`` attend over the whole grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitdeploy.models.attention import attend
from vitdeploy.models.sam.common import LayerNorm2d, MLPBlock


class PatchEmbed(nn.Module):
    """(B, 3, H, W) -> (B, H/p, W/p, embed_dim): a strided convolution, channels last."""

    def __init__(self, *, patch_size: int, in_chans: int = 3, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


def relative_position_table(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """The relative-position embedding of every (query, key) pair along one axis.

    rel_pos: (L, d) learned for L = 2 * max(q_size, k_size) - 1 offsets (resized linearly when it
    was learned for another size) -> (q_size, k_size, d).
    """
    max_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_dist:
        resized = F.interpolate(rel_pos.t().unsqueeze(0), size=max_dist, mode="linear")
        rel_pos = resized.squeeze(0).t()
    # When q and k differ in length, the shorter one's coordinates are stretched to the longer.
    q_coords = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    offsets = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[offsets.long()]


def decomposed_rel_pos_bias(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                            q_size: tuple[int, int], k_size: tuple[int, int]) -> torch.Tensor:
    """The additive attention bias of MViTv2's decomposed relative positions.

    q: (B, heads, qh*qw, d) unscaled queries; rel_pos_h: (2*qh-1, d); rel_pos_w: (2*qw-1, d)
    -> bias (B, heads, qh*qw, kh*kw) to add to the attention logits. The bias of a (query, key)
    pair is q . Rh[qy, ky] + q . Rw[qx, kx], so the (L x L) table is built from two small ones.
    """
    (qh, qw), (kh, kw) = q_size, k_size
    b, heads, _, d = q.shape
    table_h = relative_position_table(qh, kh, rel_pos_h)  # (qh, kh, d)
    table_w = relative_position_table(qw, kw, rel_pos_w)  # (qw, kw, d)
    grid_q = q.reshape(b * heads, qh, qw, d)
    rel_h = torch.matmul(grid_q, table_h.transpose(1, 2))  # (B*heads, qh, qw, kh)
    rel_w = torch.matmul(grid_q.transpose(1, 2), table_w.transpose(1, 2)).transpose(1, 2)  # (.., qh, qw, kw)
    bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return bias.reshape(b, heads, qh * qw, kh * kw)


class Attention(nn.Module):
    """Self-attention over a (B, H, W, C) token grid with optional decomposed relative positions.

    ``fused_attention`` picks scaled_dot_product_attention (the relative-position bias becomes its
    additive mask) or the explicit matmul-softmax that quantization and TensorRT's MHA fusion see.
    Parameter names are the official ones: ``qkv``, ``proj``, ``rel_pos_h``, ``rel_pos_w``.
    """

    def __init__(self, dim: int, *, num_heads: int, qkv_bias: bool = True, use_rel_pos: bool = False,
                 input_size: tuple[int, int] | None = None, fused_attention: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if use_rel_pos and input_size is None:
            raise ValueError("relative positions need the input_size (H, W) of the token grid")
        self.num_heads = num_heads
        self.fused_attention = fused_attention
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        b, h, w, c = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, H*W, d)
        bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w), (h, w)) if self.use_rel_pos else None
        out = attend(q, k, v, fused=self.fused_attention, mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> windows (B * nWindows, ws, ws, C) and the zero-padded size (Hp, Wp)."""
    b, h, w, c = x.shape
    pad_h = (window_size - h % window_size) % window_size
    pad_w = (window_size - w % window_size) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.reshape(b, hp // window_size, window_size, wp // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c), (hp, wp)


def window_unpartition(windows: torch.Tensor, window_size: int, *, batch: int, padded_hw: tuple[int, int],
                       hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of ``window_partition``: windows (B * nWindows, ws, ws, C) -> (B, H, W, C)."""
    (hp, wp), (h, w) = padded_hw, hw
    x = windows.reshape(batch, hp // window_size, wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


class Block(nn.Module):
    """Pre-norm transformer block on a token grid; ``window_size`` 0 means global attention."""

    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 use_rel_pos: bool = False, window_size: int = 0, input_size: tuple[int, int],
                 fused_attention: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, use_rel_pos=use_rel_pos,
                              input_size=input_size if window_size == 0 else (window_size, window_size),
                              fused_attention=fused_attention)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(embedding_dim=dim, mlp_dim=int(dim * mlp_ratio), act=nn.GELU)
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            b, h, w, _ = x.shape
            windows, padded_hw = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(windows), self.window_size, batch=b, padded_hw=padded_hw, hw=(h, w))
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class ImageEncoderViT(nn.Module):
    """images (B, 3, img_size, img_size), normalised -> image_embeddings (B, out_chans, S/p, S/p).

    The absolute position embedding is learned for exactly ``img_size``; SAM pads every image to
    that square, so the encoder takes no other size.
    """

    def __init__(self, *, img_size: int = 1024, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, out_chans: int = 256,
                 qkv_bias: bool = True, use_rel_pos: bool = True, window_size: int = 14,
                 global_attn_indexes: tuple[int, ...] = (), fused_attention: bool = True):
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        grid = (img_size // patch_size, img_size // patch_size)
        self.patch_embed = PatchEmbed(patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid[0], grid[1], embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, use_rel_pos=use_rel_pos,
                  window_size=0 if i in global_attn_indexes else window_size, input_size=grid,
                  fused_attention=fused_attention)
            for i in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"SAM's image encoder takes {self.img_size}x{self.img_size} images (resize the "
                             f"longest side and pad), got {tuple(x.shape[-2:])}")
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))
