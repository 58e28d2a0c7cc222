"""Segment Anything in the zoo: official checkpoint layout, shapes, attention paths, prompt semantics."""

from __future__ import annotations

import math

import pytest
import torch

from vitdeploy.errors import ModelNotFoundError, VitDeployError
from vitdeploy.models.sam import Sam, build_sam
from vitdeploy.models.sam.image_encoder import Attention, window_partition, window_unpartition
from vitdeploy.models.zoo import ZOO, build_model, get_card

# The official builders (segment_anything/build_sam.py): embed dim, depth, heads, global blocks.
OFFICIAL_ENCODERS = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


def official_state_dict_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official checkpoint (sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth,
    sam_vit_h_4b8939.pth), spelled out from the official modules' structure, independently of
    vitdeploy's code: image 1024, patch 16, window 14, prompt dim 256, mask_in_chans 16, decoder
    depth 2 / 8 heads / MLP 2048, IoU head 256, 3 multimask outputs."""
    embed, depth, heads, global_blocks = OFFICIAL_ENCODERS[variant]
    head_dim = embed // heads
    grid, window, d, mask_chans = 64, 14, 256, 16
    shapes: dict[str, tuple[int, ...]] = {}

    def linear(prefix: str, n_in: int, n_out: int) -> None:
        shapes[f"{prefix}.weight"] = (n_out, n_in)
        shapes[f"{prefix}.bias"] = (n_out,)

    def norm(prefix: str, n: int) -> None:
        shapes[f"{prefix}.weight"] = (n,)
        shapes[f"{prefix}.bias"] = (n,)

    enc = "image_encoder"
    shapes[f"{enc}.pos_embed"] = (1, grid, grid, embed)
    shapes[f"{enc}.patch_embed.proj.weight"] = (embed, 3, 16, 16)
    shapes[f"{enc}.patch_embed.proj.bias"] = (embed,)
    for i in range(depth):
        blk = f"{enc}.blocks.{i}"
        size = grid if i in global_blocks else window
        norm(f"{blk}.norm1", embed)
        shapes[f"{blk}.attn.rel_pos_h"] = (2 * size - 1, head_dim)
        shapes[f"{blk}.attn.rel_pos_w"] = (2 * size - 1, head_dim)
        linear(f"{blk}.attn.qkv", embed, 3 * embed)
        linear(f"{blk}.attn.proj", embed, embed)
        norm(f"{blk}.norm2", embed)
        linear(f"{blk}.mlp.lin1", embed, 4 * embed)
        linear(f"{blk}.mlp.lin2", 4 * embed, embed)
    shapes[f"{enc}.neck.0.weight"] = (d, embed, 1, 1)
    norm(f"{enc}.neck.1", d)
    shapes[f"{enc}.neck.2.weight"] = (d, d, 3, 3)
    norm(f"{enc}.neck.3", d)

    pe = "prompt_encoder"
    shapes[f"{pe}.pe_layer.positional_encoding_gaussian_matrix"] = (2, d // 2)
    for i in range(4):
        shapes[f"{pe}.point_embeddings.{i}.weight"] = (1, d)
    shapes[f"{pe}.not_a_point_embed.weight"] = (1, d)
    shapes[f"{pe}.mask_downscaling.0.weight"] = (mask_chans // 4, 1, 2, 2)
    shapes[f"{pe}.mask_downscaling.0.bias"] = (mask_chans // 4,)
    norm(f"{pe}.mask_downscaling.1", mask_chans // 4)
    shapes[f"{pe}.mask_downscaling.3.weight"] = (mask_chans, mask_chans // 4, 2, 2)
    shapes[f"{pe}.mask_downscaling.3.bias"] = (mask_chans,)
    norm(f"{pe}.mask_downscaling.4", mask_chans)
    shapes[f"{pe}.mask_downscaling.6.weight"] = (d, mask_chans, 1, 1)
    shapes[f"{pe}.mask_downscaling.6.bias"] = (d,)
    shapes[f"{pe}.no_mask_embed.weight"] = (1, d)

    md = "mask_decoder"

    def attention(prefix: str, internal: int) -> None:
        for proj in ("q_proj", "k_proj", "v_proj"):
            linear(f"{prefix}.{proj}", d, internal)
        linear(f"{prefix}.out_proj", internal, d)

    for i in range(2):
        layer = f"{md}.transformer.layers.{i}"
        attention(f"{layer}.self_attn", d)
        attention(f"{layer}.cross_attn_token_to_image", d // 2)
        attention(f"{layer}.cross_attn_image_to_token", d // 2)
        linear(f"{layer}.mlp.lin1", d, 2048)
        linear(f"{layer}.mlp.lin2", 2048, d)
        for n in range(1, 5):
            norm(f"{layer}.norm{n}", d)
    attention(f"{md}.transformer.final_attn_token_to_image", d // 2)
    norm(f"{md}.transformer.norm_final_attn", d)
    shapes[f"{md}.iou_token.weight"] = (1, d)
    shapes[f"{md}.mask_tokens.weight"] = (4, d)
    shapes[f"{md}.output_upscaling.0.weight"] = (d, d // 4, 2, 2)  # ConvTranspose2d: (in, out, k, k)
    shapes[f"{md}.output_upscaling.0.bias"] = (d // 4,)
    norm(f"{md}.output_upscaling.1", d // 4)
    shapes[f"{md}.output_upscaling.3.weight"] = (d // 4, d // 8, 2, 2)
    shapes[f"{md}.output_upscaling.3.bias"] = (d // 8,)
    for i in range(4):
        for j, (n_in, n_out) in enumerate([(d, d), (d, d), (d, d // 8)]):
            linear(f"{md}.output_hypernetworks_mlps.{i}.layers.{j}", n_in, n_out)
    for j, (n_in, n_out) in enumerate([(d, 256), (256, 256), (256, 4)]):
        linear(f"{md}.iou_prediction_head.layers.{j}", n_in, n_out)
    return shapes


def _meta_sam(variant: str) -> Sam:
    with torch.device("meta"):
        return build_sam(variant)


def test_reference_key_list_has_the_published_parameter_count():
    """Cross-check the hand-built reference: sam_vit_b has 93,735,472 parameters (the number SAM
    fine-tuning scripts such as MedSAM print for the official model), all but the Gaussian matrix."""
    shapes = official_state_dict_shapes("vit_b")
    gaussian = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
    assert sum(math.prod(s) for k, s in shapes.items() if k != gaussian) == 93_735_472


@pytest.mark.parametrize("variant", ["vit_b", "vit_l", "vit_h"])
def test_state_dict_matches_the_official_checkpoints(variant):
    model = _meta_sam(variant)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    official = official_state_dict_shapes(variant)
    assert sorted(set(official) - set(ours)) == [], "missing keys"
    assert sorted(set(ours) - set(official)) == [], "unexpected keys"
    assert {k: s for k, s in ours.items() if official[k] != s} == {}, "shape mismatches"
    # And what a user does with the official file: a strict load with no missing/unexpected keys.
    checkpoint = {k: torch.empty(s, device="meta") for k, s in official.items()}
    result = model.load_state_dict(checkpoint, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_official_parameter_counts():
    counts = {v: sum(p.numel() for p in _meta_sam(v).parameters()) for v in ("vit_b", "vit_l", "vit_h")}
    assert counts == {"vit_b": 93_735_472, "vit_l": 312_342_832, "vit_h": 641_090_608}


def test_zoo_cards():
    assert {"sam-vit-b", "sam-vit-l", "sam-vit-h", "sam-vit-test"} <= set(ZOO)
    card = get_card("sam-vit-b")
    assert card.head.kind == "sam" and card.image_size == (1024, 1024) and card.patch_size == 16
    assert card.class_names == ()
    assert card.head.config == {"prompt_embed_dim": 256, "image_embedding_size": [64, 64],
                                "mask_input_size": [256, 256], "multimask_outputs": 3}
    assert card.parameter_count() == 93_735_472
    test = get_card("sam-vit-test")
    assert test.image_size == (256, 256)
    assert test.head.config["image_embedding_size"] == [16, 16]
    assert isinstance(build_model("sam-vit-test"), Sam)


def test_unknown_variant_names_the_valid_ones():
    with pytest.raises(ModelNotFoundError, match="vit_b, vit_l, vit_h, test") as info:
        build_sam("vit_x")
    assert isinstance(info.value, VitDeployError)


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fresh SAM weights leave relative positions and the position embedding at zero; perturb
    every parameter so the tests exercise them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if "rel_pos" in name else 0.05
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model


def _test_pair() -> tuple[Sam, Sam]:
    fused = randomize_(build_sam("test", fused_attention=True))
    explicit = build_sam("test", fused_attention=False)
    explicit.load_state_dict(fused.state_dict())
    return fused, explicit


def _prompts(batch: int, n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    coords = torch.rand(batch, n, 2, generator=gen) * size
    labels = torch.randint(0, 2, (batch, n), generator=gen).float()
    return coords, labels


@torch.no_grad()
def test_forward_shapes_of_the_test_variant():
    model = build_sam("test")
    images = torch.randn(2, 3, 256, 256)
    assert model.image_encoder(images).shape == (2, 32, 16, 16)
    coords, labels = _prompts(2, 3, 256)
    masks, iou = model(images, point_coords=coords, point_labels=labels)
    assert masks.shape == (2, 3, 64, 64) and iou.shape == (2, 3)
    boxes = torch.tensor([[10.0, 20.0, 100.0, 200.0], [0.0, 0.0, 50.0, 60.0]])
    masks, iou = model(images, boxes=boxes, mask_inputs=torch.randn(2, 1, 64, 64), multimask_output=False)
    assert masks.shape == (2, 1, 64, 64) and iou.shape == (2, 1)
    full = model.postprocess_masks(masks, input_size=(192, 256), original_size=(480, 640))
    assert full.shape == (2, 1, 480, 640)
    with pytest.raises(ValueError, match="256x256"):
        model.image_encoder(torch.randn(1, 3, 224, 224))


@torch.no_grad()
def test_one_image_serves_several_prompt_sets():
    """The official decoder path: one image embedding, B prompt sets (SamPredictor's batch)."""
    model = randomize_(build_sam("test"))
    emb = model.image_encoder(torch.randn(1, 3, 256, 256))
    coords, labels = _prompts(3, 2, 256)
    sparse, dense = model.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    pe = model.prompt_encoder.get_dense_pe()
    shared, _ = model.mask_decoder.predict_masks(image_embeddings=emb, image_pe=pe, sparse_prompt_embeddings=sparse,
                                                 dense_prompt_embeddings=dense)
    repeated, _ = model.mask_decoder.predict_masks(image_embeddings=emb.expand(3, -1, -1, -1), image_pe=pe,
                                                   sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
    assert shared.shape == (3, 4, 64, 64)
    torch.testing.assert_close(shared, repeated)


@torch.no_grad()
def test_fused_and_explicit_attention_agree():
    fused, explicit = _test_pair()
    images = torch.randn(2, 3, 256, 256)
    emb_f, emb_e = fused.image_encoder(images), explicit.image_encoder(images)
    torch.testing.assert_close(emb_f, emb_e, atol=1e-5, rtol=1e-4)
    coords, labels = _prompts(2, 4, 256)
    boxes = torch.tensor([[10.0, 20.0, 100.0, 200.0], [0.0, 0.0, 50.0, 60.0]])
    a = fused(images, point_coords=coords, point_labels=labels, boxes=boxes)
    b = explicit(images, point_coords=coords, point_labels=labels, boxes=boxes)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-4)


def _official_rel_pos_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """The official ``Attention.forward`` with ``add_decomposed_rel_pos``, written with einsum."""
    b, h, w, c = x.shape
    heads = attn.num_heads
    qkv = attn.qkv(x).reshape(b, h * w, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, b * heads, h * w, -1).unbind(0)
    logits = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1)

    def table(size: int, rel_pos: torch.Tensor) -> torch.Tensor:
        coords = torch.arange(size)[:, None] - torch.arange(size)[None, :] + (size - 1)
        return rel_pos[coords.long()]

    r_q = q.reshape(b * heads, h, w, -1)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, table(h, attn.rel_pos_h))
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, table(w, attn.rel_pos_w))
    logits = (logits.view(b * heads, h, w, h, w) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :])
    out = logits.view(b * heads, h * w, h * w).softmax(-1) @ v
    out = out.view(b, heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
    return attn.proj(out)


@pytest.mark.parametrize("fused", [True, False])
@torch.no_grad()
def test_encoder_attention_matches_the_official_relative_positions(fused):
    attn = randomize_(Attention(32, num_heads=4, use_rel_pos=True, input_size=(5, 7), fused_attention=fused))
    x = torch.randn(3, 5, 7, 32)
    torch.testing.assert_close(attn(x), _official_rel_pos_attention(attn, x), atol=1e-5, rtol=1e-4)


def test_window_partition_order_padding_and_inverse():
    x = torch.randn(2, 7, 9, 3)
    windows, (hp, wp) = window_partition(x, 4)
    assert (hp, wp) == (8, 12) and windows.shape == (2 * 2 * 3, 4, 4, 3)
    padded = torch.nn.functional.pad(x, (0, 0, 0, 3, 0, 1))
    # Windows run batch-major, then rows, then columns of windows.
    torch.testing.assert_close(windows[1 * 6 + 1 * 3 + 2], padded[1, 4:8, 8:12])
    torch.testing.assert_close(window_unpartition(windows, 4, batch=2, padded_hw=(hp, wp), hw=(7, 9)), x)


def _official_pe(matrix: torch.Tensor, coords01: torch.Tensor) -> torch.Tensor:
    coords = (2 * coords01 - 1) @ matrix
    coords = 2 * torch.pi * coords
    return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)


@torch.no_grad()
def test_prompt_embeddings_follow_the_official_rules():
    """Points: +0.5 pixel, x / W and y / H, padding replaced by not_a_point_embed; labels 0/1 add
    point_embeddings[0/1]; box corners add point_embeddings[2/3]; dense PE at cell centres."""
    pe = randomize_(build_sam("test")).prompt_encoder
    matrix = pe.pe_layer.positional_encoding_gaussian_matrix
    coords = torch.tensor([[[10.0, 200.0], [255.0, 0.0]]])
    labels = torch.tensor([[1.0, 0.0]])
    sparse, dense = pe(points=(coords, labels), boxes=None, masks=None)
    assert sparse.shape == (1, 3, 32)  # + SAM's padding point when there is no box
    base = _official_pe(matrix, (coords + 0.5) / 256)
    torch.testing.assert_close(sparse[0, 0], base[0, 0] + pe.point_embeddings[1].weight[0])
    torch.testing.assert_close(sparse[0, 1], base[0, 1] + pe.point_embeddings[0].weight[0])
    torch.testing.assert_close(sparse[0, 2], pe.not_a_point_embed.weight[0])
    torch.testing.assert_close(dense, pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, 16, 16))

    box = torch.tensor([[4.0, 8.0, 100.0, 120.0]])
    sparse, _ = pe(points=None, boxes=box, masks=None)
    corners = _official_pe(matrix, (box.reshape(1, 2, 2) + 0.5) / 256)
    torch.testing.assert_close(sparse[0, 0], corners[0, 0] + pe.point_embeddings[2].weight[0])
    torch.testing.assert_close(sparse[0, 1], corners[0, 1] + pe.point_embeddings[3].weight[0])

    grid = torch.ones(16, 16)
    y, x = (grid.cumsum(0) - 0.5) / 16, (grid.cumsum(1) - 0.5) / 16
    official_dense_pe = _official_pe(matrix, torch.stack([x, y], dim=-1)).permute(2, 0, 1)
    torch.testing.assert_close(pe.get_dense_pe()[0], official_dense_pe)
