#!/usr/bin/env python3
"""Train a rig-level 3D detector (`vit-tiny-rig3d`) on vitdeploy's synthetic drives.

The shared ViT encoder runs on all six cameras of a frame set; the Perceiver-IO head
(`vitdeploy.models.heads.rig3d`) answers with 3D boxes in the ego frame. Set-prediction loss as
DETR: Hungarian matching on class probability + L1 of the centre (normalised to the head's ego
range) + L1 of the log size + L1 of (sin, cos) of the yaw, then cross-entropy (no-object
down-weighted) and the same L1 terms on the matched queries, on every decoder layer. Frame sets
come from `SceneGenerator` on the fly with exact 3D labels (`vitdeploy.data.boxes3d`). Time-boxed
(`--minutes`); CPU by default, CUDA when present. `--encoder-from` starts the encoder from a
checkpoint of a per-camera model of the same size (e.g. runs/demo-detr/demo-detr.pt).

Writes (into --out): rig3d.pt (state dict), train.log, report.json (steps, held-out nuScenes-style
mAP / mATE / mASE / mAOE from `vitdeploy.heads.metrics3d`).

Example:
  .venv/bin/python tools/train_rig3d.py --minutes 60 --out runs/rig3d
  .venv/bin/python tools/train_rig3d.py --model vit-test-rig3d --minutes 1 --out runs/rig3d-smoke
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from train_demo import Prefetcher  # tools/ is on sys.path when this file runs as a script

from vitdeploy.bundle.manifest import Preprocessing
from vitdeploy.data.boxes3d import Boxes3D, render_rig_sample
from vitdeploy.data.geometry import geometry_feed
from vitdeploy.data.scenes import SceneGenerator
from vitdeploy.heads.metrics3d import Detection3DConfig, detection3d_scores
from vitdeploy.heads.rig3d import decode_boxes3d
from vitdeploy.models.rig_model import get_rig3d
from vitdeploy.runtime.preprocess import normalize

EVAL_SEED = 7  # held out: training drives use seeds >= 1000


# ---------------------------------------------------------------- data
def in_range(boxes: Boxes3D, ego_range: tuple[float, ...]) -> np.ndarray:
    lo, hi = np.array(ego_range[:3]), np.array(ego_range[3:])
    return np.flatnonzero(((boxes.centers >= lo) & (boxes.centers <= hi)).all(axis=1))


def sample_batch(rng: np.random.Generator, gens: dict[int, SceneGenerator], *, batch: int, size: tuple[int, int],
                 spec: Preprocessing, ego_range: tuple[float, ...], seed_pool: tuple[int, int] = (1000, 5096),
                 ) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    """-> (inputs: images (B, 6, 3, H, W), intrinsics (B, 6, 3, 3), cam_to_ego (B, 6, 4, 4);
    per frame set targets: labels (K,), centers (K, 3), sizes (K, 3), yaws (K,))."""
    images, intr, ext, targets = [], [], [], []
    for _ in range(batch):
        seed = int(rng.integers(*seed_pool))
        gen = gens.get(seed)
        if gen is None:
            if len(gens) > 64:
                gens.pop(next(iter(gens)))
            gen = gens[seed] = SceneGenerator(size=size, cameras=6, seed=seed, with_masks=False)
        sample = render_rig_sample(gen, int(rng.integers(0, 3000)))
        images.append(normalize(np.stack([f.image for f in sample.frames]), spec))
        feed = geometry_feed(sample.geometry, image_size=size)
        intr.append(feed["intrinsics"])
        ext.append(feed["cam_to_ego"])
        keep = in_range(sample.boxes, ego_range)
        b = sample.boxes
        targets.append({"labels": torch.from_numpy(b.labels[keep]), "centers": torch.from_numpy(b.centers[keep]),
                        "sizes": torch.from_numpy(b.sizes[keep]), "yaws": torch.from_numpy(b.yaws[keep])})
    inputs = {"images": torch.from_numpy(np.stack(images)), "intrinsics": torch.from_numpy(np.stack(intr)),
              "cam_to_ego": torch.from_numpy(np.stack(ext))}
    return inputs, targets


# ---------------------------------------------------------------- loss
class SetCriterion3D:
    """Hungarian matching, then CE (no-object down-weighted) and L1 on centre, log size and yaw."""

    def __init__(self, num_classes: int, *, ego_range: tuple[float, ...], w_class=2.0, w_center=5.0, w_size=1.0,
                 w_yaw=1.0, eos_coef=0.1):
        self.num_classes = num_classes
        self.lo = torch.tensor(ego_range[:3])
        self.extent = torch.tensor(ego_range[3:]) - self.lo
        self.w = {"class": w_class, "center": w_center, "size": w_size, "yaw": w_yaw}
        self.empty_weight = torch.ones(num_classes + 1)
        self.empty_weight[-1] = eos_coef

    def _terms(self, boxes: torch.Tensor, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """boxes (Q, 8) and K targets -> (Q, K) L1 costs of centre, log size, yaw."""
        dev = boxes.device
        center = torch.cdist((boxes[:, :3] - self.lo.to(dev)) / self.extent.to(dev),
                             (t["centers"] - self.lo.to(dev)) / self.extent.to(dev), p=1)
        size = torch.cdist(boxes[:, 3:6].clamp(min=1e-3).log(), t["sizes"].clamp(min=1e-3).log(), p=1)
        yaw = torch.cdist(boxes[:, 6:8], torch.stack([t["yaws"].sin(), t["yaws"].cos()], -1), p=1)
        return center, size, yaw

    @torch.no_grad()
    def match(self, logits: torch.Tensor, boxes: torch.Tensor, targets) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        probs = logits.softmax(-1)
        for i, t in enumerate(targets):
            if len(t["labels"]) == 0:
                out.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
                continue
            center, size, yaw = self._terms(boxes[i], t)
            cost = (-self.w["class"] * probs[i][:, t["labels"]] + self.w["center"] * center + self.w["size"] * size
                    + self.w["yaw"] * yaw)
            out.append(linear_sum_assignment(cost.cpu().numpy()))
        return out

    def __call__(self, layers: list[dict[str, torch.Tensor]], targets) -> tuple[torch.Tensor, dict[str, float]]:
        total = torch.zeros((), device=layers[-1]["logits"].device)
        stats: dict[str, float] = {}
        n_boxes = max(1, sum(len(t["labels"]) for t in targets))
        for pred in layers:
            logits, boxes = pred["logits"].float(), pred["boxes3d"].float()
            matches = self.match(logits.detach(), boxes.detach(), targets)
            target_cls = torch.full(logits.shape[:2], self.num_classes, dtype=torch.long, device=logits.device)
            sums = {k: torch.zeros((), device=logits.device) for k in ("center", "size", "yaw")}
            for i, (rows, cols) in enumerate(matches):
                if len(rows) == 0:
                    continue
                t = {k: v[cols] for k, v in targets[i].items()}
                target_cls[i, rows] = t["labels"]
                center, size, yaw = self._terms(boxes[i, rows], t)
                sums["center"] = sums["center"] + center.diagonal().sum()
                sums["size"] = sums["size"] + size.diagonal().sum()
                sums["yaw"] = sums["yaw"] + yaw.diagonal().sum()
            loss_ce = F.cross_entropy(logits.transpose(1, 2), target_cls, weight=self.empty_weight.to(logits.device))
            total = total + self.w["class"] * loss_ce + sum(self.w[k] * v / n_boxes for k, v in sums.items())
            stats = {"ce": float(loss_ce.detach()), **{k: float(v.detach()) / n_boxes for k, v in sums.items()}}
        return total, stats


# ---------------------------------------------------------------- eval
@torch.no_grad()
def evaluate(model, *, size, spec, frame_sets: int, class_names, device) -> dict:
    """nuScenes-style scores on a held-out drive (seed EVAL_SEED), every 13th tick."""
    model.eval()
    gen = SceneGenerator(size=size, cameras=6, seed=EVAL_SEED, with_masks=False)
    preds, gts = [], []
    for k in range(frame_sets):
        sample = render_rig_sample(gen, k * 13)
        feed = geometry_feed(sample.geometry, image_size=size)
        images = torch.from_numpy(normalize(np.stack([f.image for f in sample.frames]), spec)).to(device)
        out = model(images, torch.from_numpy(feed["intrinsics"]).to(device),
                    torch.from_numpy(feed["cam_to_ego"]).to(device))
        preds += decode_boxes3d(out["logits"].float().cpu().numpy(), out["boxes3d"].float().cpu().numpy(),
                              score_threshold=0.05, top_k=100)
        gts.append(sample.boxes)
    s = detection3d_scores(preds, gts, config=Detection3DConfig(class_names=tuple(class_names)))
    model.train()
    return {"map": s.map, "mate": s.mate, "mase": s.mase, "maoe": s.maoe, "frame_sets": s.frame_sets,
            "objects": s.ground_truth_boxes, "predicted": s.predicted_boxes,
            "ap": {n: c.ap for n, c in s.per_class.items()}}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vit-tiny-rig3d")
    ap.add_argument("--out", type=Path, default=Path("runs/rig3d"))
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock training budget")
    ap.add_argument("--batch", type=int, default=2, help="frame sets (of 6 images) per step")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    ap.add_argument("--eval-every", type=float, default=15.0, help="minutes between held-out evaluations")
    ap.add_argument("--eval-frame-sets", type=int, default=30)
    ap.add_argument("--encoder-from", type=Path, default=None, help="state dict whose encoder.* keys to start from")
    ap.add_argument("--resume", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    card = get_rig3d(args.model)
    size, ego_range = card.image_size, card.head.ego_range
    spec = Preprocessing(image_size=size)
    model = card.build(fused_attention=True).to(device).train()
    if args.encoder_from:
        state = torch.load(args.encoder_from, map_location="cpu", weights_only=True)
        enc = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
        if "pos_embed" in enc and enc["pos_embed"].shape != model.encoder.pos_embed.shape:
            enc.pop("pos_embed")  # another input size: keep the fresh embedding for this one
        missing, _ = model.encoder.load_state_dict(enc, strict=False)
        print(f"encoder from {args.encoder_from}; not in it: {missing}")
    if args.resume:
        model.load_state_dict(torch.load(args.resume, map_location="cpu", weights_only=True))
    criterion = SetCriterion3D(card.head.num_classes, ego_range=ego_range)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        small = p.ndim < 2 or any(k in name for k in ("pos_embed", "camera_embed", "latents", "query_feat", "ref_points"))
        (no_decay if small else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    gens: dict[int, SceneGenerator] = {}
    feed = Prefetcher(lambda: sample_batch(rng, gens, batch=args.batch, size=size, spec=spec, ego_range=ego_range))
    log = open(args.out / "train.log", "a")  # noqa: SIM115 - open for the whole run

    def say(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    n_params = sum(p.numel() for p in model.parameters())
    say(f"training {card.name} ({n_params / 1e6:.2f}M params) at 6 x {size[0]}x{size[1]}, batch {args.batch} frame sets, "
        f"{args.minutes:g} min on {device} ({torch.get_num_threads()} threads)")
    budget, start = args.minutes * 60, time.time()
    last_eval, step, history = start, 0, []
    while time.time() - start < budget:
        frac = (time.time() - start) / budget
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        inputs, targets = feed.next()
        inputs = {k: v.to(device) for k, v in inputs.items()}
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        with torch.autocast(device.type, dtype=torch.bfloat16):
            layers = model.forward_layers(inputs["images"], inputs["intrinsics"], inputs["cam_to_ego"])
        loss, stats = criterion(layers, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 10 == 0 or step == 1:
            say(f"step {step} loss {float(loss):.3f} ce {stats['ce']:.3f} center {stats['center']:.3f} "
                f"size {stats['size']:.3f} yaw {stats['yaw']:.3f} lr {lr:.2e} {(time.time() - start) / step:.2f}s/step")
        if time.time() - last_eval > args.eval_every * 60:
            last_eval = time.time()
            m = evaluate(model, size=size, spec=spec, frame_sets=args.eval_frame_sets, class_names=card.class_names,
                         device=device)
            history.append({"step": step, "minutes": round((time.time() - start) / 60, 1), **m})
            say(f"eval step {step}: mAP {_fmt(m['map'])} mATE {_fmt(m['mate'])} mASE {_fmt(m['mase'])} "
                f"mAOE {_fmt(m['maoe'])}")
            torch.save(model.state_dict(), args.out / "rig3d.pt")
    feed.stop.set()
    torch.save(model.state_dict(), args.out / "rig3d.pt")
    final = evaluate(model, size=size, spec=spec, frame_sets=args.eval_frame_sets, class_names=card.class_names,
                     device=device)
    history.append({"step": step, "minutes": round((time.time() - start) / 60, 1), **final})
    say(f"final eval ({final['frame_sets']} held-out frame sets, {final['objects']} objects): mAP {_fmt(final['map'])} "
        f"mATE {_fmt(final['mate'])} mASE {_fmt(final['mase'])} mAOE {_fmt(final['maoe'])}")
    report = {"model": card.name, "parameters": n_params, "input_size": list(size), "cameras": 6, "steps": step,
              "batch_frame_sets": args.batch, "minutes": round((time.time() - start) / 60, 1), "device": str(device),
              "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "eval_seed": EVAL_SEED, "final": final, "history": history}
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    say(f"wrote {args.out}/rig3d.pt and report.json")


if __name__ == "__main__":
    main()
