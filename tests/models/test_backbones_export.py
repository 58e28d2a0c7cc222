"""An encoder loaded from each layout exports to ONNX and ONNX Runtime agrees with PyTorch.

The exporter's own path (``perception_graph_spec``: the position embedding baked for the export
size, a ClsHead on the class token), at a size other than the checkpoint's native one, so the
source's resizing is what gets baked.
"""

from __future__ import annotations

import onnx
import pytest
import torch
import transformers
from backbone_sources import dinov2_keys, random_weights, timm_vit_keys

from vitdeploy.bundle import HeadSpec
from vitdeploy.bundle.manifest import Preprocessing
from vitdeploy.exporter.onnx_export import export_graph
from vitdeploy.exporter.parity import check_parity
from vitdeploy.exporter.perception_graphs import perception_graph_spec
from vitdeploy.heads import make_head
from vitdeploy.models import load_backbone
from vitdeploy.models.heads.cls import ClsHead
from vitdeploy.models.model import PerceptionModel


def _timm_reg4(path):
    torch.save(random_weights(timm_vit_keys(dim=128, depth=2, patch=14, grid=4, num_classes=0, reg_tokens=4,
                                            no_embed_class=True, init_values=1e-5)), path)


def _dinov2_reg(path):
    torch.save(random_weights(dinov2_keys(dim=128, depth=2, grid=4, registers=4)), path)


def _dinov2(path):
    torch.save(random_weights(dinov2_keys(dim=128, depth=2, grid=4)), path)


def _deit_distilled(path):
    torch.save(random_weights(timm_vit_keys(dim=128, depth=2, patch=16, grid=4, distilled=True)), path)


def _hf_dinov2_registers(path):
    config = transformers.Dinov2WithRegistersConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                                    image_size=56, patch_size=14, num_register_tokens=4)
    transformers.Dinov2WithRegistersModel(config).save_pretrained(path)


def _hf_vit(path):
    config = transformers.ViTConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=256, image_size=64, patch_size=16)
    transformers.ViTModel(config).save_pretrained(path)


CHECKPOINTS = {  # layout -> (writer, export size (H, W), not the native one)
    "timm-deit-distilled": (_deit_distilled, (48, 80)),
    "dinov2-reg4": (_dinov2_reg, (42, 70)),  # patch 14, registers, LayerScale
    "hf-dinov2-registers": (_hf_dinov2_registers, (42, 70)),
    "hf-vit": (_hf_vit, (48, 80)),
    "timm-dinov2-reg4": (_timm_reg4, (42, 70)),
    "dinov2": (_dinov2, (42, 70)),
}
#: One per layout runs by default; these two only repeat a layout with another variant.
_SLOW = {"timm-dinov2-reg4", "dinov2"}


@pytest.mark.parametrize("layout", [pytest.param(k, marks=pytest.mark.slow) if k in _SLOW else k for k in CHECKPOINTS])
def test_loaded_encoder_exports_with_parity(tmp_path, layout):
    write, size = CHECKPOINTS[layout]
    write(tmp_path / "ckpt")
    encoder = load_backbone(tmp_path / "ckpt", fused_attention=False)
    model = PerceptionModel(encoder=encoder, head=ClsHead(encoder.embed_dim, num_classes=5), head_type="cls").eval()
    with torch.no_grad():
        before = model(torch.ones(1, 3, *size))["logits"]
    head = make_head(HeadSpec("cls", config={"num_classes": 5}), image_size=size)
    spec = perception_graph_spec(model, head=head, image_size=size, max_cameras=3,
                                 preprocessing=Preprocessing(image_size=size))
    with torch.no_grad():  # baking the position embedding for ``size`` changes nothing at that size
        assert torch.allclose(model(torch.ones(1, 3, *size))["logits"], before, atol=1e-5)
    exported = export_graph(spec, tmp_path / "model.onnx")
    onnx.checker.check_model(exported)
    record = check_parity(spec, tmp_path / "model.onnx")
    assert record.passed, record.cases
    assert set(record.cases) >= {"random@cameras=1", "random@cameras=3", "photo@cameras=2"}
