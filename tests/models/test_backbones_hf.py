"""Hugging Face ViTModel / Dinov2Model / Dinov2WithRegistersModel: tokens as transformers computes them.

Small random models (no network): a folder from ``save_pretrained``, the same weights as a bare
file (no config.json), a ``*ForImageClassification`` folder (keys under ``vit.``/``dinov2.``), and
``torch.save(model.state_dict())`` (transformers 5's in-memory key names).
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from safetensors.torch import save_file

from vitdeploy.errors import CheckpointError
from vitdeploy.models import load_backbone
from vitdeploy.models.backbones import BackboneLayout, read_backbone

TOL = 1e-4


def _vit():
    return transformers.ViTModel(transformers.ViTConfig(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, image_size=64,
        patch_size=16))


def _dinov2():
    return transformers.Dinov2Model(transformers.Dinov2Config(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14))


def _dinov2_registers():
    return transformers.Dinov2WithRegistersModel(transformers.Dinov2WithRegistersConfig(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14,
        num_register_tokens=4))


MODELS = {"vit": _vit, "dinov2": _dinov2, "dinov2_with_registers": _dinov2_registers}


def _random(model):
    """Move every parameter off its init (LayerScale 1, zero tokens, unit norms) so each one counts."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def _tokens(model, x):
    kwargs = {"interpolate_pos_encoding": True} if isinstance(model, transformers.ViTModel) else {}
    with torch.no_grad():
        return model(pixel_values=x, **kwargs).last_hidden_state


def _sizes(model):
    n, p = model.config.image_size, model.config.patch_size
    return [(n, n), (n + 2 * p, n + 4 * p), (n - p, n + p)]


@pytest.mark.parametrize("kind", list(MODELS))
def test_folder_matches_transformers_at_native_and_other_sizes(tmp_path, kind):
    model = _random(MODELS[kind]())
    model.save_pretrained(tmp_path)
    backbone = read_backbone(tmp_path)
    assert backbone.layout == (BackboneLayout.HF_VIT if kind == "vit" else BackboneLayout.HF_DINOV2)
    assert backbone.config.num_heads == 2
    encoder = backbone.build()
    for size in _sizes(model):
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            err = (encoder(x) - _tokens(model, x)).abs().max().item()
        assert err < TOL, f"{kind} at {size}: max abs {err:.2e}"


@pytest.mark.parametrize("kind", list(MODELS))
def test_bare_file_and_transformers5_names_load_the_same(tmp_path, kind):
    model = _random(MODELS[kind]())
    model.save_pretrained(tmp_path / "hf")
    reference = load_backbone(tmp_path / "hf").state_dict()
    # A bare safetensors file: the architecture comes from the shapes (heads: dim // 64 = 2).
    bare = load_backbone(tmp_path / "hf" / "model.safetensors").state_dict()
    torch.save(model.state_dict(), tmp_path / "in_memory.pt")  # transformers 5 names: layers.N.attention.q_proj
    in_memory = load_backbone(tmp_path / "in_memory.pt").state_dict()
    for loaded in (bare, in_memory):
        assert set(loaded) == set(reference)
        assert all(torch.equal(loaded[k], v) for k, v in reference.items())


def test_bare_file_uses_transformers_default_eps(tmp_path):
    model = _random(_vit())
    save_file(model.state_dict(), str(tmp_path / "vit.safetensors"))
    encoder = load_backbone(tmp_path / "vit.safetensors")
    assert encoder.norm.eps == 1e-12 and encoder.blocks[0].norm1.eps == 1e-12


@pytest.mark.parametrize("cls,prefix", [(transformers.ViTForImageClassification, "vit."),
                                        (transformers.Dinov2ForImageClassification, "dinov2.")])
def test_classification_checkpoint_drops_the_classifier(tmp_path, cls, prefix):
    config = (_vit() if prefix == "vit." else _dinov2()).config
    model = _random(cls(config))
    model.save_pretrained(tmp_path)
    backbone = read_backbone(tmp_path)
    assert "classifier.weight" in backbone.dropped
    x = torch.randn(1, 3, config.image_size, config.image_size)
    inner = getattr(model, prefix[:-1])
    with torch.no_grad():
        assert (backbone.build()(x) - inner(pixel_values=x).last_hidden_state).abs().max() < TOL


def test_sharded_folder(tmp_path):
    model = _random(_dinov2())
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    keys = sorted(state)
    save_file({k: state[k] for k in keys[:10]}, str(tmp_path / "a.safetensors"))
    save_file({k: state[k] for k in keys[10:]}, str(tmp_path / "b.safetensors"))
    weight_map = {k: "a.safetensors" if i < 10 else "b.safetensors" for i, k in enumerate(keys)}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "config.json").write_text(model.config.to_json_string())
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        assert (load_backbone(tmp_path)(x) - _tokens(model, x)).abs().max() < TOL


# --- what does not fit -------------------------------------------------------------------------------------

def test_unknown_layout_names_the_closest_and_its_keys(tmp_path):
    resnet = {"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.zeros(64), "fc.weight": torch.zeros(10, 512)}
    torch.save(resnet, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError) as info:
        load_backbone(tmp_path / "resnet.pth")
    msg = str(info.value)
    assert "not a ViT checkpoint in a layout vitdeploy reads (timm, dinov2, hf-vit, hf-dinov2)" in msg
    assert "closest is" in msg and "missing: " in msg
    assert "unexpected: conv1.weight (64, 3, 7, 7), bn1.weight (64,)" in msg


def test_config_that_contradicts_the_weights(tmp_path):
    model = _random(_vit())
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_hidden_layers"] = 3
    config["image_size"] = 48
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        load_backbone(tmp_path)
    msg = str(info.value)
    assert "closest to the Hugging Face ViTModel layout (hf-vit) but does not fit it" in msg
    assert "missing: encoder.layer.2.layernorm_before.weight (128,)" in msg
    assert "wrong shape: embeddings.position_embeddings (1, 17, 128), expected (1, 10, 128)" in msg


def test_config_for_another_model_type_is_refused_by_keys(tmp_path):
    model = _random(_dinov2())
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model_type"] = "vit"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"hf-vit\) but does not fit it; missing: encoder\.layer\.0\.layernorm_before"):
        load_backbone(tmp_path)


def test_unknowable_head_count_asks_for_num_heads(tmp_path):
    model = _random(transformers.ViTModel(transformers.ViTConfig(
        hidden_size=96, num_hidden_layers=1, num_attention_heads=3, intermediate_size=192, image_size=32,
        patch_size=16)))
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match="give num_heads"):
        load_backbone(tmp_path / "w.safetensors")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (load_backbone(tmp_path / "w.safetensors", num_heads=3)(x) - _tokens(model, x)).abs().max() < TOL


def test_swiglu_and_other_activations_are_refused(tmp_path):
    model = _random(_dinov2())
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(config, hidden_act="gelu_new")))
    with pytest.raises(CheckpointError, match="hidden_act 'gelu_new'; vitdeploy's encoder uses exact GELU"):
        load_backbone(tmp_path)
