"""Calibration fixtures: bundles to calibrate, calibrated bundles, and a briefly trained detector.

Calibrating writes into a bundle, so tests that calibrate get their own copy of a session-cached
export (``bundle``, ``bundle_copy`` in tests/conftest.py). The trained detector is vit-test-detr trained for a few hundred steps on synthetic scenes
with DETR's loss (Hungarian matching, CE + L1 + GIoU): enough for confident, structured outputs,
which is what an agreement measurement needs (random weights detect nothing confidently). Its
weights are kept in pytest's cache between sessions, keyed by the training recipe.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitdeploy.bundle import Bundle

TRAIN_RECIPE = {"model": "vit-test-detr", "steps": 300, "batch": 8, "frames": 384, "lr": 1e-3, "seed": 0,
                "scene_seed": 1000, "torch": torch.__version__.split("+")[0]}


@pytest.fixture(scope="session")
def calibrated(exported, tmp_path_factory):
    """calibrated(precision, **options) -> CalibrationResult on a copy of vit-test-detr, cached;
    ``options`` are ``CalibrationOptions`` fields (16 samples, 8 held out unless given)."""
    from vitdeploy.calibration import CalibrationOptions, calibrate_bundle

    cache: dict = {}

    def get(precision: str, *, model: str = "vit-test-detr", **kwargs):
        key = (precision, model, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        if key not in cache:
            dst = tmp_path_factory.mktemp(f"{model}-{precision}".replace("-", "_"))
            path = dst / "bundle"
            shutil.copytree(exported(model, max_cameras=6).path, path)
            options = CalibrationOptions(**{"samples": 16, "heldout": 8, **kwargs})
            cache[key] = calibrate_bundle(path, precision=precision, options=options)
        return cache[key]

    return get


# ---- a briefly trained detector -------------------------------------------------------------------
def _xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def _giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (N, 4), b (M, 4) xyxy -> (N, M) generalized IoU."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    inter = (torch.min(a[:, None, 2:], b[None, :, 2:]) - torch.max(a[:, None, :2], b[None, :, :2])).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    hull = (torch.max(a[:, None, 2:], b[None, :, 2:]) - torch.min(a[:, None, :2], b[None, :, :2])).clamp(min=0).prod(-1)
    return inter / union.clamp(min=1e-7) - (hull - union) / hull.clamp(min=1e-7)


def _detr_loss(logits: torch.Tensor, boxes: torch.Tensor, targets: list[dict], num_classes: int) -> torch.Tensor:
    from scipy.optimize import linear_sum_assignment

    weight = torch.ones(num_classes + 1)
    weight[-1] = 0.1  # DETR's down-weighting of "no object"
    target_cls = torch.full(logits.shape[:2], num_classes, dtype=torch.long)
    src, tgt = [], []
    probs = logits.detach().softmax(-1)
    for i, t in enumerate(targets):
        if len(t["labels"]) == 0:
            continue
        cost = (-2 * probs[i][:, t["labels"]] + 5 * torch.cdist(boxes[i].detach(), t["boxes"], p=1)
                - 2 * _giou(_xyxy(boxes[i].detach()), _xyxy(t["boxes"])))
        rows, cols = linear_sum_assignment(cost.numpy())
        target_cls[i, rows] = t["labels"][cols]
        src.append(boxes[i, rows])
        tgt.append(t["boxes"][cols])
    loss = 2 * F.cross_entropy(logits.transpose(1, 2), target_cls, weight=weight)
    if src:
        n = max(1, sum(len(t["labels"]) for t in targets))
        s, g = torch.cat(src), torch.cat(tgt)
        loss = loss + 5 * F.l1_loss(s, g, reduction="sum") / n + 2 * (1 - torch.diag(_giou(_xyxy(s), _xyxy(g)))).sum() / n
    return loss


def train_test_detr(out: Path) -> Path:
    """Train vit-test-detr per TRAIN_RECIPE on synthetic frames; write safetensors to ``out``."""
    from safetensors.torch import save_file

    from vitdeploy.bundle import Preprocessing
    from vitdeploy.data.scenes import SceneGenerator
    from vitdeploy.models.zoo import get_card
    from vitdeploy.runtime.preprocess import preprocess_frames

    r = TRAIN_RECIPE
    card = get_card(r["model"])
    h, w = card.image_size
    torch.manual_seed(r["seed"])
    rng = np.random.default_rng(r["seed"])
    gen = SceneGenerator(size=(h, w), cameras=6, seed=r["scene_seed"], with_masks=False)
    picks = sorted(zip(rng.choice(6400, r["frames"], replace=False).tolist(),
                       rng.integers(0, 6, r["frames"]).tolist(), strict=True))
    frames = [gen.frame(t, c) for t, c in picks]
    images = torch.from_numpy(preprocess_frames([f.image for f in frames], Preprocessing(image_size=(h, w)))[0])
    targets = []
    for f in frames:
        b = np.array([a.box for a in f.annotations], np.float32).reshape(-1, 4)
        cxcywh = np.stack([(b[:, 0] + b[:, 2] / 2) / w, (b[:, 1] + b[:, 3] / 2) / h, b[:, 2] / w, b[:, 3] / h], -1)
        targets.append({"labels": torch.tensor([a.category_id for a in f.annotations], dtype=torch.long),
                        "boxes": torch.from_numpy(cxcywh.astype(np.float32))})
    model = card.build(fused_attention=True).train()
    num_classes = len(card.class_names)
    opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], weight_decay=0.01)
    for _ in range(r["steps"]):
        idx = rng.choice(len(frames), r["batch"], replace=False).tolist()
        _, patches, _ = model.split_tokens(images[idx])
        last = model.head.forward_layers(patches)[-1]
        loss = _detr_loss(last["logits"], last["boxes"], [targets[i] for i in idx], num_classes)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    path = out / "trained-test-detr.safetensors"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def trained_detr_weights(request) -> Path:
    key = hashlib.sha256(json.dumps(TRAIN_RECIPE, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(request.config.cache.mkdir(f"vitdeploy-trained-test-detr-{key}"))
    path = folder / "trained-test-detr.safetensors"
    if not path.is_file():
        train_test_detr(folder)
    return path


@pytest.fixture(scope="session")
def trained_detr(tmp_path_factory, trained_detr_weights) -> Bundle:
    """An exported bundle of the trained vit-test-detr (64x96, cameras 1..6); copy before calibrating."""
    from vitdeploy.exporter.export import ExportOptions, export_model

    return export_model("vit-test-detr", out=tmp_path_factory.mktemp("trained_detr"), checkpoint=trained_detr_weights,
                        options=ExportOptions(max_cameras=6)).bundle
