import pytest
import torch

from vitdeploy.errors import ModelNotFoundError
from vitdeploy.models.zoo import ZOO, build_model, get_card

TEST_MODELS = ["vit-test-cls", "vit-test-cait", "vit-test-detr", "vit-test-mask", "vit-test-tab"]


def test_zoo_has_every_size_and_head():
    for size in ("tiny", "small", "base", "large"):
        for head in ("cls", "cait", "detr", "mask", "tab"):
            assert f"vit-{size}-{head}" in ZOO


def test_parameter_counts_match_known_vit_sizes():
    # ViT-Ti/16 encoder ~5.5M, ViT-B/16 ~85.8M parameters (timm); heads add the rest.
    enc = lambda name: sum(p.numel() for p in _meta(name).encoder.parameters())  # noqa: E731
    assert 5.3e6 < enc("vit-tiny-cls") < 5.8e6
    assert 85e6 < enc("vit-base-cls") < 87e6


def _meta(name):
    with torch.device("meta"):
        return get_card(name).build()


@pytest.mark.parametrize("name", TEST_MODELS)
def test_fused_and_explicit_attention_agree(name):
    torch.manual_seed(0)
    fused = build_model(name, fused_attention=True)
    explicit = build_model(name, fused_attention=False)
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(3, 3, *get_card(name).image_size)
    a, b = fused(x), explicit(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)


def test_detr_outputs_and_non_square_frames():
    model = build_model("vit-test-detr")
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 224))  # 8x14 patches, default grid is 4x6
    assert out["logits"].shape == (2, 10, 7)
    assert out["boxes"].shape == (2, 10, 4)
    assert float(out["boxes"].min()) >= 0 and float(out["boxes"].max()) <= 1


def test_mask_head_stride():
    model = build_model("vit-test-mask")
    out = model(torch.randn(1, 3, 64, 96))
    assert out["masks"].shape == (1, 5, 16, 24)  # stride 4


def test_patch_multiple_is_enforced():
    model = build_model("vit-test-cls")
    with pytest.raises(ValueError, match="multiple of the patch size 16"):
        model(torch.randn(1, 3, 65, 64))


def test_cait_only_updates_the_class_token():
    """Class attention must not let the patches see the CLS token: every class-attention block is
    given the encoder's patch tokens unchanged, whatever the CLS token is, and returns the CLS token
    alone; changing the CLS token changes the logits."""
    model = build_model("vit-test-cait")
    x = torch.randn(1, 3, 64, 64)
    seen = []  # (patches a block was given, shape of what it returned), every block, both runs
    for block in model.head.blocks:
        block.register_forward_hook(lambda _m, args, out: seen.append((args[1].clone(), tuple(out.shape))))
    with torch.no_grad():
        _, encoder_patches, _ = model.split_tokens(x)
        before = model(x)["logits"]
        # not a constant shift: the final LayerNorm would take that out again
        model.head.cls_token.add_(torch.randn(model.head.cls_token.shape, generator=torch.Generator().manual_seed(0)))
        after = model(x)["logits"]
    assert not torch.allclose(before, after, atol=1e-4)  # the head reads the CLS token
    assert len(seen) == 2 * len(model.head.blocks) == 4
    for patches, shape in seen:
        torch.testing.assert_close(patches, encoder_patches)  # no block changed the patches, in either run
        assert shape == (1, 1, encoder_patches.shape[-1])  # a block gives back the CLS token only


def test_unknown_name_suggests_the_nearest():
    with pytest.raises(ModelNotFoundError, match="did you mean 'vit-tiny-detr'"):
        get_card("vit-tiny-dter")
