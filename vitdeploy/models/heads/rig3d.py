"""A rig-level Perceiver-IO head: every camera's tokens in, one set of 3D boxes in the ego frame out.

Each camera's patch tokens get a learned camera embedding and a PETR-style position encoding of
their pixel rays (points at fixed depths along the ray through the patch centre, in the ego
frame, through an MLP), so a token says what it sees and where in the car's frame that can be.
The tokens of all cameras form the input array; a small learned latent array reads it with one
cross-attention (Perceiver IO's encode), a few self-attention blocks process the latents, and
learned output queries, each anchored to a reference point in the ego frame, decode from the
latents (DETR-style layers) into boxes. Queries answer for the rig, not for a camera, so an
object seen by two cameras is one query's answer and needs no cross-camera merging.

Only plain attention, MatMul, LayerNorm, GELU/ReLU, Exp, Sigmoid and Clip: no deformable sampling,
no custom op. The ray geometry is computed in the graph from the ``intrinsics`` and
``cam_to_ego`` inputs, so a re-calibrated car needs new numbers, not a new graph.

Raw tensors out, one answer per frame set: ``logits`` (B, Q, num_classes + 1), the last class
meaning "no object", and ``boxes3d`` (B, Q, 8): centre x, y, z (metres, ego frame), size l, w, h
(metres), sin and cos of the yaw (not normalised; yaw = atan2(sin, cos)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vitdeploy.heads.rig3d import BOX3D_VALUES
from vitdeploy.models.attention import Mlp, MultiHeadAttention
from vitdeploy.models.encoder import Block
from vitdeploy.models.heads.query_decoder import DecoderLayer


@dataclass(frozen=True)
class Rig3dConfig:
    """The head's shape. ``ego_range`` (x_min, y_min, z_min, x_max, y_max, z_max) metres is the
    part of the ego frame the queries' reference points span (box centres stay inside it) and the
    ray points are normalised to; ``max_depth_m`` the farthest of the ``depth_bins`` ray points."""

    num_classes: int
    num_queries: int = 100
    num_latents: int = 256
    latent_blocks: int = 2
    decoder_layers: int = 3
    num_heads: int = 6
    max_cameras: int = 6
    depth_bins: int = 16
    max_depth_m: float = 60.0
    ego_range: tuple[float, float, float, float, float, float] = (-55.0, -55.0, -1.0, 55.0, 55.0, 4.0)


class RayPositionEncoding(nn.Module):
    """PETR's 3D position encoding of each patch's pixel ray.

    For the patch centre (u, v) the ray is K^-1 (u, v, 1) turned into the ego frame; the points
    at ``depth_bins`` depths along it (linear-increasing spacing, 1 m to ``max_depth_m``, denser
    near the car), normalised to ``ego_range``, go through a two-layer MLP.
    """

    def __init__(self, dim: int, *, patch_size: int, depth_bins: int, max_depth_m: float,
                 ego_range: tuple[float, ...]):
        super().__init__()
        self.patch_size = patch_size
        i = torch.arange(depth_bins, dtype=torch.float32)
        step = (max_depth_m - 1.0) / (depth_bins * (depth_bins - 1)) if depth_bins > 1 else 0.0
        self.register_buffer("depths", 1.0 + step * i * (i + 1), persistent=False)
        lo, hi = torch.tensor(ego_range[:3]), torch.tensor(ego_range[3:])
        self.register_buffer("centre", (lo + hi) / 2, persistent=False)
        self.register_buffer("half_extent", (hi - lo) / 2, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(3 * depth_bins, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))

    def pixel_centres(self, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) u and (N,) v of the patch centres in token order (row-major), input pixels."""
        gh, gw = grid
        p = self.patch_size
        rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        return (cols.flatten().float() + 0.5) * p, (rows.flatten().float() + 0.5) * p

    def ray_points(self, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """intrinsics (B, C, 3, 3), cam_to_ego (B, C, 4, 4) -> (B, C, N, depth_bins, 3) ego metres."""
        u, v = (t.to(intrinsics) for t in self.pixel_centres(grid))
        fx, fy = intrinsics[..., 0, 0:1], intrinsics[..., 1, 1:2]  # (B, C, 1)
        cx, cy = intrinsics[..., 0, 2:3], intrinsics[..., 1, 2:3]
        x, y = (u - cx) / fx, (v - cy) / fy  # (B, C, N): the ray at depth 1 m, camera frame
        rays = torch.stack([x, y, torch.ones_like(x)], dim=-1)
        rays = torch.matmul(rays, cam_to_ego[..., :3, :3].transpose(-1, -2))  # (B, C, N, 3), ego frame
        origin = cam_to_ego[..., None, None, :3, 3]  # (B, C, 1, 1, 3)
        return origin + self.depths[:, None] * rays.unsqueeze(-2)

    def forward(self, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """-> (B, C, N, dim)."""
        points = ((self.ray_points(intrinsics, cam_to_ego, grid) - self.centre) / self.half_extent).clamp(-2.0, 2.0)
        return self.mlp(points.flatten(-2))


class CrossAttentionBlock(nn.Module):
    """Perceiver IO's encode: latents (B, L, dim) read inputs (B, M, dim) -> (B, L, dim)."""

    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float = 4.0, fused_attention: bool = True):
        super().__init__()
        self.norm_latents = nn.LayerNorm(dim)
        self.norm_inputs = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads=num_heads, fused=fused_attention)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, latents: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        kv = self.norm_inputs(inputs)
        latents = latents + self.attn(self.norm_latents(latents), kv, kv)
        return latents + self.mlp(self.norm_mlp(latents))


def reference_points(num_queries: int, *, ego_range: tuple[float, ...], height_m: float = 0.8) -> torch.Tensor:
    """(Q, 3) initial reference points in logit space of ``ego_range``: a grid over the ground
    plane (x, y) at ``height_m``, so that each query starts responsible for a patch of the road
    (the anchoring that makes Hungarian matching stable early in training)."""
    cols = max(1, round(num_queries ** 0.5))
    rows = -(-num_queries // cols)
    xs, ys = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing="ij")
    z = (height_m - ego_range[2]) / (ego_range[5] - ego_range[2])
    points = torch.stack([xs.flatten(), ys.flatten(), torch.full((rows * cols,), z)], -1)[:num_queries]
    return torch.logit(points.clamp(0.02, 0.98))


class Rig3dHead(nn.Module):
    """Perceiver-IO over all cameras' tokens -> 3D boxes in the ego frame (module docstring)."""

    output_names = ("logits", "boxes3d")

    def __init__(self, dim: int, *, config: Rig3dConfig, patch_size: int, fused_attention: bool = True):
        super().__init__()
        c = config
        self.config = c
        self.input_proj = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.rays = RayPositionEncoding(dim, patch_size=patch_size, depth_bins=c.depth_bins,
                                        max_depth_m=c.max_depth_m, ego_range=c.ego_range)
        self.camera_embed = nn.Parameter(torch.zeros(c.max_cameras, dim))
        self.latents = nn.Parameter(torch.zeros(c.num_latents, dim))
        self.read = CrossAttentionBlock(dim, num_heads=c.num_heads, fused_attention=fused_attention)
        self.latent_blocks = nn.ModuleList(
            Block(dim, num_heads=c.num_heads, fused_attention=fused_attention) for _ in range(c.latent_blocks))
        self.query_feat = nn.Parameter(torch.zeros(c.num_queries, dim))
        self.ref_points = nn.Parameter(reference_points(c.num_queries, ego_range=c.ego_range))
        self.query_pos = nn.Sequential(nn.Linear(3, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.layers = nn.ModuleList(
            DecoderLayer(dim, num_heads=c.num_heads, fused_attention=fused_attention) for _ in range(c.decoder_layers))
        self.norm = nn.LayerNorm(dim)
        self.class_embed = nn.Linear(dim, c.num_classes + 1)
        self.box_embeds = nn.ModuleList(Mlp(dim, dim, out_dim=len(BOX3D_VALUES)) for _ in range(c.decoder_layers))
        for box_embed in self.box_embeds:  # start at the reference point, 1 m cubes, yaw 0
            nn.init.zeros_(box_embed.fc2.weight)
            nn.init.zeros_(box_embed.fc2.bias)
            box_embed.fc2.bias.data[7] = 1.0
        lo, hi = torch.tensor(c.ego_range[:3]), torch.tensor(c.ego_range[3:])
        self.register_buffer("range_lo", lo, persistent=False)
        self.register_buffer("range_size", hi - lo, persistent=False)
        for p in (self.camera_embed, self.latents, self.query_feat):
            nn.init.trunc_normal_(p, std=0.02)

    def encode(self, patches: torch.Tensor, *, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor,
               grid: tuple[int, int]) -> torch.Tensor:
        """patches (B, C, N, dim) -> latents (B, L, dim)."""
        b, c, n, d = patches.shape
        x = self.input_proj(patches) + self.rays(intrinsics, cam_to_ego, grid) + self.camera_embed[:c, None, :]
        latents = self.read(self.latents.expand(b, -1, -1), x.reshape(b, c * n, d))
        for block in self.latent_blocks:
            latents = block(latents)
        return latents

    def _boxes(self, ref: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """ref (B, Q, 3) logits in ego_range, raw (B, Q, 8) -> (B, Q, 8) metres and sin/cos."""
        centre = self.range_lo + ref.sigmoid() * self.range_size
        size = raw[..., 3:6].clamp(-5.0, 4.0).exp()  # the clamp keeps exp finite in FP16
        return torch.cat([centre, size, raw[..., 6:8]], dim=-1)

    def forward_layers(self, patches: torch.Tensor, *, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor,
                       grid: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
        """Predictions of every decoder layer (auxiliary losses); the last one is the output.
        Each layer moves the reference points; the next layer starts from them (detached, as in
        Deformable DETR's iterative refinement)."""
        latents = self.encode(patches, intrinsics=intrinsics, cam_to_ego=cam_to_ego, grid=grid)
        b = latents.shape[0]
        tgt = self.query_feat.expand(b, -1, -1)
        ref = self.ref_points.expand(b, -1, -1)
        outs = []
        for layer, box_embed in zip(self.layers, self.box_embeds, strict=True):
            tgt = layer(tgt, latents, self.query_pos(ref.sigmoid()))
            h = self.norm(tgt)
            raw = box_embed(h)
            moved = ref + raw[..., :3]
            outs.append({"logits": self.class_embed(h), "boxes3d": self._boxes(moved, raw)})
            ref = moved.detach()
        return outs

    def forward(self, patches: torch.Tensor, *, intrinsics: torch.Tensor, cam_to_ego: torch.Tensor,
                grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        return self.forward_layers(patches, intrinsics=intrinsics, cam_to_ego=cam_to_ego, grid=grid)[-1]
