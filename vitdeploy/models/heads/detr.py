"""DETR-style detection heads: queries -> class logits and normalised boxes.

``DetrHead`` decodes learned queries (DETR). ``TwoStageDetrHead`` first scores every patch token
as an object proposal and decodes the top-K proposals (the query selection of Deformable DETR's
two-stage variant, DINO and RT-DETR); demo-detr uses it (docs/demo-detr-training.json has
how it trained compared with learned queries).

Raw tensors out: ``logits`` (B, Q, num_classes + 1), the last class meaning "no object", and
``boxes`` (B, Q, 4) as (cx, cy, w, h) in 0..1 of the model input. Turning them into pixel boxes
with a score threshold is post-processing (``vitdeploy.heads``).
"""

from __future__ import annotations

import torch
from torch import nn

from vitdeploy.models.heads.query_decoder import DecoderLayer, QueryDecoder


class BoxMlp(nn.Module):
    """Query features (..., dim) -> box offsets (..., 4) in logit space."""

    def __init__(self, dim: int, *, num_layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_layers - 1))
        self.out = nn.Linear(dim, 4)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.out(x)


def reference_boxes(num_queries: int) -> torch.Tensor:
    """(Q, 4) initial boxes in logit space: centres spread over the image on a grid, small size.

    Anchoring each query to a region (as Anchor/Deformable DETR do) makes the Hungarian matching
    stable early in training, so the detector converges in far fewer steps than plain DETR.
    """
    cols = max(1, round((num_queries * 2) ** 0.5))
    rows = -(-num_queries // cols)
    ys, xs = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing="ij")
    centres = torch.stack([xs.flatten(), ys.flatten()], -1)[:num_queries]
    boxes = torch.cat([centres, torch.full((num_queries, 2), 0.1)], -1)
    return torch.logit(boxes, eps=1e-4)


class DetrHead(nn.Module):
    output_names = ("logits", "boxes")

    def __init__(self, dim: int, *, num_classes: int, num_queries: int = 100, num_layers: int = 3,
                 num_heads: int = 8, fused_attention: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.decoder = QueryDecoder(dim, num_queries=num_queries, num_layers=num_layers, num_heads=num_heads,
                                    fused_attention=fused_attention)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.box_embed = BoxMlp(dim)
        self.ref_boxes = nn.Parameter(reference_boxes(num_queries))

    def _predict(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.class_embed(h), "boxes": (self.box_embed(h) + self.ref_boxes).sigmoid()}

    def forward_layers(self, patches: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Predictions of every decoder layer (auxiliary losses); the last one is the output."""
        return [self._predict(h) for h in self.decoder(patches)]

    def forward(self, patches: torch.Tensor, *, cls: torch.Tensor | None, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        return self._predict(self.decoder(patches)[-1])


def patch_anchors(grid: tuple[int, int], *, size_in_patches: float = 2.0) -> torch.Tensor:
    """(gh*gw, 4) anchor boxes in logit space, one per patch in token order: the patch centre and
    a square of ``size_in_patches`` patches."""
    gh, gw = grid
    ys, xs = torch.meshgrid((torch.arange(gh) + 0.5) / gh, (torch.arange(gw) + 0.5) / gw, indexing="ij")
    wh = torch.tensor([size_in_patches / gw, size_in_patches / gh]).expand(gh * gw, 2)
    boxes = torch.cat([xs.reshape(-1, 1), ys.reshape(-1, 1), wh], -1).clamp(1e-4, 1 - 1e-4)
    return torch.logit(boxes)


class TwoStageDetrHead(nn.Module):
    """Patch proposals -> top-K queries -> decoder with iterative box refinement.

    Every patch token predicts per-class proposal scores (sigmoid) and a box relative to its
    patch's anchor. The ``num_queries`` best-scoring patches become the decoder's queries: their
    features are the query content, their boxes the reference boxes, whose embedding is the query
    position; the patch anchors' embedding is the position of the cross-attention keys. Each
    decoder layer refines the boxes of the one before. Outputs are those of ``DetrHead`` (softmax
    logits with a no-object class, cxcywh boxes), so post-processing and evaluation are shared.
    In ONNX the selection is ReduceMax, TopK and GatherElements, which TensorRT runs natively.
    """

    output_names = ("logits", "boxes")

    def __init__(self, dim: int, *, num_classes: int, num_queries: int = 100, num_layers: int = 3,
                 num_heads: int = 8, fused_attention: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.memory_proj = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.proposal_class = nn.Linear(dim, num_classes)
        nn.init.constant_(self.proposal_class.bias, -4.6)  # prior probability 0.01 (focal-loss init)
        self.proposal_box = BoxMlp(dim)
        self.box_pos = nn.Sequential(nn.Linear(4, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.layers = nn.ModuleList(
            DecoderLayer(dim, num_heads=num_heads, fused_attention=fused_attention) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.box_embeds = nn.ModuleList(BoxMlp(dim) for _ in range(num_layers))

    def proposals(self, patches: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        """-> memory (B, N, dim), proposal logits (B, N, classes), proposal boxes in logit space
        (B, N, 4), anchors in logit space (N, 4)."""
        anchors = patch_anchors(grid).to(patches)
        memory = self.memory_proj(patches)
        return memory, self.proposal_class(memory), self.proposal_box(memory) + anchors, anchors

    def forward_layers(self, patches: torch.Tensor, grid: tuple[int, int]
                       ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
        """-> (proposals: sigmoid ``logits`` (B, N, classes) and ``boxes`` (B, N, 4); the
        predictions of every decoder layer, the last being the output)."""
        memory, logits, box_logits, anchors = self.proposals(patches, grid)
        dim = memory.shape[-1]
        k = min(self.num_queries, memory.shape[1])
        best = logits.amax(-1).topk(k, dim=1).indices
        # Queries in patch order, not score order: the decoder does not care (self-attention is
        # order-free), and two runtimes that round a near-tie differently then still agree
        # slot by slot. Sorted as floats: TopK on FP32 is what every runtime has.
        index = best.float().topk(k, dim=1, largest=False).values.long().unsqueeze(-1)  # (B, K, 1)
        tgt = torch.gather(memory, 1, index.expand(-1, -1, dim)).detach()
        ref = torch.gather(box_logits, 1, index.expand(-1, -1, 4)).detach()
        memory_pos = self.box_pos(anchors.sigmoid()).unsqueeze(0)
        outs = []
        for layer, box_embed in zip(self.layers, self.box_embeds, strict=True):
            tgt = layer(tgt, memory, self.box_pos(ref.sigmoid()), memory_pos=memory_pos)
            h = self.norm(tgt)
            box = box_embed(h) + ref
            outs.append({"logits": self.class_embed(h), "boxes": box.sigmoid()})
            ref = box.detach()
        return {"logits": logits, "boxes": box_logits.sigmoid()}, outs

    def forward(self, patches: torch.Tensor, *, cls: torch.Tensor | None, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        return self.forward_layers(patches, grid)[1][-1]
