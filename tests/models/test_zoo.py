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
    """Class attention must not let the patches see the CLS token: changing the CLS token's
    contribution changes the logits, but the encoder's tokens stay the same."""
    model = build_model("vit-test-cait")
    x = torch.randn(1, 3, 64, 64)
    _, patches, grid = model.split_tokens(x)
    before = patches.clone()
    with torch.no_grad():
        model.head.cls_token.add_(1.0)
        _, patches2, _ = model.split_tokens(x)
    torch.testing.assert_close(before, patches2)


def test_unknown_name_suggests_the_nearest():
    with pytest.raises(ModelNotFoundError, match="did you mean 'vit-tiny-detr'"):
        get_card("vit-tiny-dter")
