"""The two-stage DETR head (demo-detr's): patch proposals, top-K selection, ONNX parity."""

import numpy as np
import torch

from vitdeploy.bundle import HeadSpec
from vitdeploy.bundle.manifest import Preprocessing
from vitdeploy.exporter.onnx_export import export_graph
from vitdeploy.exporter.parity import check_parity
from vitdeploy.exporter.perception_graphs import perception_graph_spec
from vitdeploy.heads import make_head
from vitdeploy.models.heads.detr import TwoStageDetrHead, patch_anchors
from vitdeploy.models.zoo import ENCODER_SIZES, get_card

SIZE = (64, 96)


def _model(num_queries: int = 5):
    """vit-test-detr's encoder with a two-stage head."""
    torch.manual_seed(0)
    model = get_card("vit-test-detr").build()
    s = ENCODER_SIZES["test"]
    model.head = TwoStageDetrHead(model.encoder.embed_dim, num_classes=3, num_queries=num_queries,
                                  num_layers=s.decoder_layers, num_heads=s.decoder_heads)
    return model.eval()


def test_anchors_sit_on_patch_centres_in_token_order():
    boxes = patch_anchors((2, 3)).sigmoid()
    assert boxes.shape == (6, 4)
    torch.testing.assert_close(boxes[:, 0], torch.tensor([1, 3, 5, 1, 3, 5]) / 6)
    torch.testing.assert_close(boxes[:, 1], torch.tensor([1, 1, 1, 3, 3, 3]) / 4)
    torch.testing.assert_close(boxes[0, 2:], torch.tensor([2 / 3, 2 / 2]).clamp(max=1 - 1e-4))


def test_queries_are_the_best_scoring_patches_in_patch_order():
    model = _model()
    x = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        _, patches, grid = model.split_tokens(x)
        proposals, layers = model.head.forward_layers(patches, grid)
        out = model(x)
    assert proposals["logits"].shape == (2, grid[0] * grid[1], 3)
    assert len(layers) == ENCODER_SIZES["test"].decoder_layers
    assert out["logits"].shape == (2, 5, 4) and out["boxes"].shape == (2, 5, 4)
    for b in range(2):
        chosen = proposals["logits"][b].amax(-1).topk(5).indices.sort().values
        # Fresh box heads predict zero offsets, so every layer returns its query's proposal box.
        torch.testing.assert_close(out["boxes"][b], proposals["boxes"][b, chosen])
    torch.testing.assert_close(layers[-1]["boxes"], out["boxes"])


def test_more_queries_than_patches_uses_every_patch():
    model = _model(num_queries=1000)
    with torch.no_grad():
        out = model(torch.randn(1, 3, *SIZE))
    assert out["boxes"].shape[1] == (SIZE[0] // 16) * (SIZE[1] // 16)


def test_exports_with_a_dynamic_camera_axis_and_matches_pytorch(tmp_path):
    model = _model()
    head = make_head(HeadSpec("detr"), image_size=SIZE)  # query and class counts left to the model
    spec = perception_graph_spec(model, head=head, image_size=SIZE, max_cameras=4,
                                 preprocessing=Preprocessing(image_size=SIZE))
    onnx_model = export_graph(spec, tmp_path / "model.onnx")
    ops = {n.op_type for n in onnx_model.graph.node}
    assert {"TopK", "GatherElements"} <= ops or {"TopK", "Gather"} <= ops
    record = check_parity(spec, tmp_path / "model.onnx")
    assert record.passed, record.cases


def test_demo_detr_is_two_stage():
    model = get_card("demo-detr").build()
    assert isinstance(model.head, TwoStageDetrHead)
    assert model.head.num_queries == 30
    assert np.prod(model.encoder.grid) == 12 * 21
