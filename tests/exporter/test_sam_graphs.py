"""SAM's two export graphs: the wrappers keep SAM's prompt semantics, and the ONNX files agree
with PyTorch in onnxruntime at 1 and 2 cameras and 1, 2, 5 points and a box."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from vitdeploy.errors import ExportError
from vitdeploy.exporter.lint import lint_model
from vitdeploy.exporter.onnx_export import export_graph
from vitdeploy.exporter.sam_graphs import PromptDecoderGraph, sam_graph_specs
from vitdeploy.heads import make_head
from vitdeploy.models.sam import Sam, build_sam
from vitdeploy.models.zoo import get_card
from vitdeploy.runtime.backends.onnxruntime import cpu_session

FP32_ATOL = 1e-4


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fresh SAM weights leave relative positions and the position embedding at zero; perturb
    every parameter so the graphs exercise them."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * (0.5 if "rel_pos" in name else 0.05))
    return model


def sam_head(model):
    """The zoo's ``sam`` head of the variant ``model`` is (test or vit_b, told apart by size)."""
    name = "sam-vit-test" if model.image_encoder.img_size == 256 else "sam-vit-b"
    card = get_card(name)
    return make_head(card.head, image_size=card.image_size)


@pytest.fixture(scope="module")
def sam() -> Sam:
    return randomize_(build_sam("test"))


@pytest.fixture(scope="module")
def specs(sam):
    return {s.name: s for s in sam_graph_specs(sam, head=sam_head(sam), max_cameras=4, max_points=8)}


@pytest.fixture(scope="module")
def exported(specs, tmp_path_factory):
    """graph name -> (path, onnx model); exported once for this module."""
    out = tmp_path_factory.mktemp("sam_vit_test")
    return {name: (out / spec.file, export_graph(spec, out / spec.file, opset=18)) for name, spec in specs.items()}


def test_specs_describe_both_graphs(specs):
    enc, dec = specs["image_encoder"], specs["prompt_decoder"]
    assert (enc.file, dec.file) == ("image_encoder.onnx", "prompt_decoder.onnx")
    assert [(t.name, t.shape) for t in enc.inputs] == [("images", ["cameras", 3, 256, 256])]
    assert [(t.name, t.shape) for t in enc.outputs] == [("image_embeddings", ["cameras", 32, 16, 16])]
    assert [(t.name, t.dtype, t.shape) for t in dec.inputs] == [
        ("image_embeddings", "float32", ["cameras", 32, 16, 16]),
        ("point_coords", "float32", ["cameras", "points", 2]),
        ("point_labels", "float32", ["cameras", "points"]),
    ]
    assert [(t.name, t.shape) for t in dec.outputs] == [
        ("iou_predictions", ["cameras", 4]), ("low_res_masks", ["cameras", 4, 64, 64])]
    assert dec.dim_ranges == {"cameras": (1, 4), "points": (1, 8)}
    assert all(v >= 2 for v in [*enc.trace_dims.values(), *dec.trace_dims.values()])
    cases = {c.name: c.feeds["point_labels"] for c in dec.parity_cases}
    assert {"1_points@cameras=2", "2_points@cameras=2", "5_points@cameras=2", "box@cameras=2"} <= set(cases)
    assert cases["5_points@cameras=2"].shape == (2, 6) and (cases["5_points@cameras=2"][:, -1] == -1).all()
    assert (cases["box@cameras=2"] == [[2, 3], [2, 3]]).all()


def test_bad_arguments_are_refused(sam):
    with pytest.raises(ExportError, match="max_cameras"):
        sam_graph_specs(sam, head=sam_head(sam), max_cameras=0)
    with pytest.raises(ExportError, match="max_points must be >= 2"):
        sam_graph_specs(sam, head=sam_head(sam), max_cameras=2, max_points=1)
    with pytest.raises(ExportError, match="Segment Anything"):
        sam_graph_specs(torch.nn.Linear(2, 2), head=sam_head(sam), max_cameras=2)


@torch.no_grad()
def test_decoder_graph_gives_what_sam_gives(sam):
    """The arithmetic prompt embedding equals SAM's own prompt path: clicks + the padding point
    equal points without a box; corners labelled 2/3 equal a box; a click + corners equal both."""
    graph = PromptDecoderGraph(sam).eval()
    emb = torch.randn(2, 32, 16, 16)
    coords = torch.tensor([[[30.0, 40.0], [200.0, 10.0]], [[128.0, 128.0], [5.0, 250.0]]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    boxes = torch.tensor([[10.0, 20.0, 100.0, 200.0], [0.0, 0.0, 50.0, 60.0]])
    pad_xy, pad_label = torch.zeros(2, 1, 2), torch.full((2, 1), -1.0)
    corner_labels = torch.tensor([[2.0, 3.0], [2.0, 3.0]])

    def reference(**prompts):
        sparse, dense = sam.prompt_encoder(masks=None, **prompts)
        masks, iou = sam.mask_decoder.predict_masks(
            image_embeddings=emb, image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)
        return iou, masks

    cases = [
        (graph(emb, torch.cat([coords, pad_xy], 1), torch.cat([labels, pad_label], 1)),
         reference(points=(coords, labels), boxes=None)),
        (graph(emb, boxes.reshape(2, 2, 2), corner_labels), reference(points=None, boxes=boxes)),
        (graph(emb, torch.cat([coords, boxes.reshape(2, 2, 2)], 1), torch.cat([labels, corner_labels], 1)),
         reference(points=(coords, labels), boxes=boxes)),
    ]
    for got, want in cases:
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
    # multimask (1..3) vs single mask (0), as the official decoder slices them
    masks, iou = sam.mask_decoder(image_embeddings=emb, image_pe=sam.prompt_encoder.get_dense_pe(),
                                  sparse_prompt_embeddings=sam.prompt_encoder(points=None, boxes=boxes, masks=None)[0],
                                  dense_prompt_embeddings=sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1),
                                  multimask_output=True)
    torch.testing.assert_close(masks, cases[1][0][1][:, 1:], atol=1e-5, rtol=1e-5)


def _ort_vs_torch(spec, path, feeds_list):
    session = cpu_session(path)
    worst = 0.0
    for feeds in feeds_list:
        with torch.no_grad():
            want = spec.module(*[torch.from_numpy(feeds[t.name]) for t in spec.inputs])
        got = session.run([t.name for t in spec.outputs], {t.name: feeds[t.name] for t in spec.inputs})
        for t, w, g in zip(spec.outputs, want, got, strict=True):
            assert g.shape == tuple(w.shape), t.name
            worst = max(worst, float(np.abs(w.numpy() - g).max()))
    return worst


def test_image_encoder_onnx_matches_torch_at_1_and_2_cameras(specs, exported):
    spec, (path, model) = specs["image_encoder"], exported["image_encoder"]
    rng = np.random.default_rng(1)
    worst = _ort_vs_torch(spec, path, [spec.make_inputs({"cameras": n}, rng) for n in (1, 2)])
    assert worst <= FP32_ATOL
    assert lint_model(model) == []


def test_prompt_decoder_onnx_matches_torch_for_points_and_boxes(specs, exported):
    spec, (path, _) = specs["prompt_decoder"], exported["prompt_decoder"]
    rng = np.random.default_rng(1)
    feeds = [spec.make_inputs({"cameras": c, "points": p}, rng) for c in (1, 2) for p in (1, 2, 5)]
    feeds += [case.feeds for case in spec.parity_cases]  # 1, 2, 5 clicks + padding, a box, click + box
    box = next(case for case in spec.parity_cases if case.name.startswith("box@"))
    single_camera_box = {k: v[:1] for k, v in box.feeds.items()}
    assert _ort_vs_torch(spec, path, [*feeds, single_camera_box]) <= FP32_ATOL


def test_prompt_decoder_graph_is_tensorrt_friendly(exported):
    _, model = exported["prompt_decoder"]
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"If", "Loop", "NonZero", "Scan", "ScatterND", "Where"}, ops
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in model.graph.input)
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input}
    assert dims["point_coords"] == ["cameras", "points", 2]
    assert lint_model(model) == []



def test_explicit_attention_graphs_export_and_match(tmp_path):
    """The matmul-softmax graphs (what quantization sees) export and agree as well."""
    model = randomize_(build_sam("test", fused_attention=False))
    rng = np.random.default_rng(2)
    for spec in sam_graph_specs(model, head=sam_head(model), max_cameras=2, max_points=4):
        path = tmp_path / spec.file
        lint = lint_model(export_graph(spec, path, opset=18))
        assert lint == []
        feeds = [spec.make_inputs({"cameras": 2, "points": 4}, rng), *[c.feeds for c in spec.parity_cases]]
        assert _ort_vs_torch(spec, path, feeds) <= FP32_ATOL


@pytest.mark.slow
def test_sam_vit_b_graphs_export_and_match(tmp_path):
    """The real size: 64x64 grid padded to 70 for the 14x14 windows, 4096-token global blocks."""
    model = randomize_(build_sam("vit_b"))
    rng = np.random.default_rng(3)
    for spec in sam_graph_specs(model, head=sam_head(model), max_cameras=2):
        path = tmp_path / spec.file
        export_graph(spec, path, opset=18)
        feeds = spec.make_inputs({"cameras": 1, "points": 3}, rng)
        assert _ort_vs_torch(spec, path, [feeds, *[c.feeds for c in spec.parity_cases]]) <= FP32_ATOL  # measured 4e-5
