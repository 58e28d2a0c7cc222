#!/usr/bin/env python3
"""Train the `demo-detr` detector on vitdeploy's synthetic driving scenes.

A ViT-Tiny/16 encoder with a two-stage DETR head (`TwoStageDetrHead`: every patch proposes an
object, the top 30 proposals are decoded), trained from scratch. The decoder learns with
Hungarian matching, classification + L1 + GIoU losses and auxiliary losses on every layer; the
patch proposals with a focal loss + L1 + GIoU against FCOS-style centre-sampled targets. A
checkpoint of the older learned-query head warm-starts it (`--resume`): encoder and decoder layers
carry over. Frames come from
`vitdeploy.data.scenes.SceneGenerator` on the fly (a new random drive, tick and camera per
sample), so there is no fixed training set to overfit. Runs on the CPU by default, CUDA when
present; the schedule is time-boxed (`--minutes`) so it fits the machine at hand.

Writes (into --out):
  demo-detr.pt              full-precision checkpoint (state dict, for resuming)
  demo-detr.safetensors     FP16 weights, what the package ships
  report.json / report.md   time, hardware, steps, held-out COCO mAP (faster-coco-eval)

Example:
  .venv/bin/python tools/train_demo.py --minutes 60 --out runs/demo-detr
  cp runs/demo-detr/demo-detr.safetensors vitdeploy/models/weights/
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import queue
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from scipy.optimize import linear_sum_assignment

from vitdeploy.data.scenes import SceneGenerator
from vitdeploy.models.zoo import DEMO_DETR, DRIVING_CLASSES, get_card
from vitdeploy.runtime.preprocess import normalize

EVAL_SEED = 7  # held out: training drives use seeds >= 1000


# ---------------------------------------------------------------- data
def sample_batch(rng: np.random.Generator, gens: dict[int, SceneGenerator], *, batch: int,
                 size: tuple[int, int], spec) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    h, w = size
    images, targets = [], []
    for _ in range(batch):
        seed = int(rng.integers(1000, 1000 + 4096))
        gen = gens.get(seed)
        if gen is None:
            if len(gens) > 64:
                gens.pop(next(iter(gens)))
            gen = gens[seed] = SceneGenerator(size=size, cameras=6, seed=seed, with_masks=False)
        frame = gen.frame(int(rng.integers(0, 3000)), int(rng.integers(0, 6)))
        img = frame.image
        boxes = np.array([a.box for a in frame.annotations], np.float32).reshape(-1, 4)
        labels = np.array([a.category_id for a in frame.annotations], np.int64)
        if rng.random() < 0.5:  # horizontal flip
            img = img[:, ::-1]
            boxes[:, 0] = w - boxes[:, 0] - boxes[:, 2]
        cxcywh = np.stack([(boxes[:, 0] + boxes[:, 2] / 2) / w, (boxes[:, 1] + boxes[:, 3] / 2) / h,
                           boxes[:, 2] / w, boxes[:, 3] / h], -1) if len(boxes) else np.zeros((0, 4), np.float32)
        images.append(np.ascontiguousarray(img))
        targets.append({"labels": torch.from_numpy(labels), "boxes": torch.from_numpy(cxcywh.astype(np.float32))})
    x = torch.from_numpy(normalize(np.stack(images), spec))
    return x, targets


class Prefetcher:
    """Renders the next batches in a background thread while the model trains on this one."""

    def __init__(self, fn, depth: int = 3):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.fn = fn
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            item = self.fn()
            while not self.stop.is_set():
                try:
                    self.q.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def next(self):
        return self.q.get()


# ---------------------------------------------------------------- loss
def box_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def generalized_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (N, 4), b (M, 4) xyxy -> (N, M) GIoU."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = inter / union.clamp(min=1e-7)
    lt_c = torch.min(a[:, None, :2], b[None, :, :2])
    rb_c = torch.max(a[:, None, 2:], b[None, :, 2:])
    hull = (rb_c - lt_c).clamp(min=0).prod(-1)
    return iou - (hull - union) / hull.clamp(min=1e-7)


class SetCriterion:
    """DETR's loss: Hungarian matching, then CE (no-object down-weighted), L1 and GIoU on boxes."""

    def __init__(self, num_classes: int, *, w_class=2.0, w_l1=5.0, w_giou=2.0, eos_coef=0.1):
        self.num_classes = num_classes
        self.w_class, self.w_l1, self.w_giou = w_class, w_l1, w_giou
        self.empty_weight = torch.ones(num_classes + 1)
        self.empty_weight[-1] = eos_coef

    @torch.no_grad()
    def match(self, logits: torch.Tensor, boxes: torch.Tensor, targets) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        probs = logits.float().softmax(-1)
        for i, t in enumerate(targets):
            if len(t["labels"]) == 0:
                out.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
                continue
            cost = (-self.w_class * probs[i][:, t["labels"]]
                    + self.w_l1 * torch.cdist(boxes[i].float(), t["boxes"], p=1)
                    - self.w_giou * generalized_iou(box_xyxy(boxes[i].float()), box_xyxy(t["boxes"])))
            rows, cols = linear_sum_assignment(cost.numpy())
            out.append((rows, cols))
        return out

    def __call__(self, layers: list[dict[str, torch.Tensor]], targets) -> tuple[torch.Tensor, dict[str, float]]:
        total = torch.zeros(())
        stats: dict[str, float] = {}
        n_boxes = max(1, sum(len(t["labels"]) for t in targets))
        for depth, pred in enumerate(layers):
            logits, boxes = pred["logits"].float(), pred["boxes"].float()
            matches = self.match(logits.detach(), boxes.detach(), targets)
            target_cls = torch.full(logits.shape[:2], self.num_classes, dtype=torch.long)
            src_boxes, tgt_boxes = [], []
            for i, (rows, cols) in enumerate(matches):
                target_cls[i, rows] = targets[i]["labels"][cols]
                src_boxes.append(boxes[i, rows])
                tgt_boxes.append(targets[i]["boxes"][cols])
            loss_ce = F.cross_entropy(logits.transpose(1, 2), target_cls, weight=self.empty_weight)
            sb, tb = torch.cat(src_boxes), torch.cat(tgt_boxes)
            loss_l1 = F.l1_loss(sb, tb, reduction="sum") / n_boxes
            loss_giou = (1 - torch.diag(generalized_iou(box_xyxy(sb), box_xyxy(tb)))).sum() / n_boxes
            total = total + self.w_class * loss_ce + self.w_l1 * loss_l1 + self.w_giou * loss_giou
            if depth == len(layers) - 1:
                stats = {"ce": float(loss_ce), "l1": float(loss_l1), "giou": float(loss_giou)}
        return total, stats


def proposal_targets(targets, grid: tuple[int, int], num_classes: int, *, radius: float = 1.5
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per patch: class index (num_classes = background) and the cxcywh box it should propose.

    A patch proposes an object when its centre lies inside the object's box within ``radius``
    patches of the object's centre (FCOS centre sampling), or when it holds that centre (small
    objects); where objects compete, the smallest wins. -> (B, N) long, (B, N, 4) float."""
    gh, gw = grid
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    cx, cy = (cols + 0.5) / gw, (rows + 0.5) / gh
    labels = torch.full((len(targets), gh * gw), num_classes, dtype=torch.long)
    boxes = torch.zeros(len(targets), gh * gw, 4)
    for i, t in enumerate(targets):
        if len(t["labels"]) == 0:
            continue
        tb = t["boxes"].cpu()
        b = box_xyxy(tb)
        inside = ((cx[:, None] >= b[None, :, 0]) & (cx[:, None] <= b[None, :, 2])
                  & (cy[:, None] >= b[None, :, 1]) & (cy[:, None] <= b[None, :, 3]))
        near = ((cx[:, None] - tb[None, :, 0]).abs() <= radius / gw) & ((cy[:, None] - tb[None, :, 1]).abs() <= radius / gh)
        home = ((cols[:, None] == (tb[None, :, 0] * gw).long().clamp(0, gw - 1))
                & (rows[:, None] == (tb[None, :, 1] * gh).long().clamp(0, gh - 1)))
        pos = (inside & near) | home
        area = (tb[:, 2] * tb[:, 3])[None, :].expand_as(pos)
        area = torch.where(pos, area, torch.full_like(area, float("inf")))
        best = area.argmin(1)
        hit = pos.any(1)
        labels[i, hit] = t["labels"].cpu()[best[hit]]
        boxes[i, hit] = tb[best[hit]]
    return labels, boxes


def sigmoid_focal_loss(logits: torch.Tensor, onehot: torch.Tensor, *, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    pt = p * onehot + (1 - p) * (1 - onehot)
    return ((alpha * onehot + (1 - alpha) * (1 - onehot)) * ce * (1 - pt) ** gamma).sum()


def proposal_loss(proposals: dict[str, torch.Tensor], targets, grid, num_classes: int) -> torch.Tensor:
    """The two-stage head's patch proposals: focal loss on the class scores, L1 + GIoU on the
    boxes of the patches that should propose an object."""
    logits, boxes = proposals["logits"].float(), proposals["boxes"].float()
    labels, tboxes = proposal_targets(targets, grid, num_classes)
    labels, tboxes = labels.to(logits.device), tboxes.to(logits.device)
    fg = labels < num_classes
    n_pos = max(1, int(fg.sum()))
    onehot = F.one_hot(labels, num_classes + 1)[..., :num_classes].float()
    loss = 2.0 * sigmoid_focal_loss(logits, onehot) / n_pos
    if fg.any():
        loss = loss + 5.0 * F.l1_loss(boxes[fg], tboxes[fg], reduction="sum") / n_pos + \
            2.0 * (1 - torch.diag(generalized_iou(box_xyxy(boxes[fg]), box_xyxy(tboxes[fg])))).sum() / n_pos
    return loss


def warm_start_keys(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """A checkpoint of the learned-query ``DetrHead`` -> keys of ``TwoStageDetrHead``: the encoder,
    the decoder layers and the class/box heads carry over; learned queries do not."""
    out = {}
    for k, v in state.items():
        if k.startswith("head.decoder.layers.") or k.startswith("head.decoder.norm."):
            out[k.replace("head.decoder.", "head.")] = v
        elif k.startswith("head.box_embed."):
            for i in range(num_layers):
                out[k.replace("head.box_embed.", f"head.box_embeds.{i}.")] = v
        elif not k.startswith("head.decoder.") and k != "head.ref_boxes":
            out[k] = v
    return out


# ---------------------------------------------------------------- eval
@torch.no_grad()
def evaluate(model, *, size, spec, frames: int, device) -> dict[str, float]:
    """COCO mAP on held-out drives (seed EVAL_SEED), every 7th tick of each camera."""
    from faster_coco_eval import COCO, COCOeval_faster

    from vitdeploy.heads import make_head

    model.eval()
    gen = SceneGenerator(size=size, cameras=6, seed=EVAL_SEED, with_masks=False)
    h, w = size
    card = get_card(DEMO_DETR)
    head = make_head(card.head, class_names=card.class_names, image_size=size)
    images, annotations, results = [], [], []
    batch_frames = []
    ticks = [(t * 7, cam) for t in range(frames // 6 + 1) for cam in range(6)][:frames]
    for start in range(0, len(ticks), 12):
        chunk = [gen.frame(t, cam) for t, cam in ticks[start:start + 12]]
        x = torch.from_numpy(normalize(np.stack([f.image for f in chunk]), spec)).to(device)
        out = model(x)
        dets = head.detections({k: out[k].float().cpu().numpy() for k in ("logits", "boxes")},
                               score_threshold=0.01, top_k=100)
        for f, d in zip(chunk, dets, strict=True):
            image_id = len(images) + 1
            images.append({"id": image_id, "width": w, "height": h, "file_name": f"{f.camera}/{f.index}"})
            for a in f.annotations:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": a.category_id + 1,
                                    "bbox": list(a.box), "area": float(a.box[2] * a.box[3]), "iscrowd": 0})
            for box, score, label in zip(d.boxes, d.scores, d.labels, strict=True):
                x1, y1, x2, y2 = (float(v) for v in box)
                results.append({"image_id": image_id, "category_id": int(label) + 1, "score": float(score),
                                "bbox": [x1, y1, x2 - x1, y2 - y1]})
        batch_frames.extend(chunk)
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": i + 1, "name": n} for i, n in enumerate(DRIVING_CLASSES)]}
    gt.createIndex()
    if not results:
        model.train()
        return {"map": 0.0, "map50": 0.0, "images": len(images), "objects": len(annotations)}
    dt = gt.loadRes(results)
    ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    model.train()
    return {"map": float(ev.stats[0]), "map50": float(ev.stats[1]), "images": len(images), "objects": len(annotations)}


# ---------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/demo-detr"))
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock training budget")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    ap.add_argument("--eval-every", type=float, default=10.0, help="minutes between held-out evaluations")
    ap.add_argument("--eval-frames", type=int, default=120)
    ap.add_argument("--resume", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--proposal-weight", type=float, default=1.0, help="weight of the patch-proposal loss")
    ap.add_argument("--warmup", type=int, default=150, help="warm-up steps")
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    card = get_card(DEMO_DETR)
    size = card.image_size
    from vitdeploy.bundle.manifest import Preprocessing

    spec = Preprocessing(image_size=size)
    model = card.builder(fused_attention=True).to(device).train()
    if args.resume:
        state = torch.load(args.resume, map_location="cpu", weights_only=True)
        if any(k.startswith("head.decoder.") for k in state):
            state = warm_start_keys(state, len(model.head.layers))
            missing, _ = model.load_state_dict(state, strict=False)
            print(f"warm start from {args.resume} (learned-query head); new: {sorted({k.split('.')[1] for k in missing})}")
        else:
            model.load_state_dict(state)
    grid = model.encoder.grid_for(*size)
    criterion = SetCriterion(len(DRIVING_CLASSES))
    criterion.empty_weight = criterion.empty_weight.to(device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "pos_embed" in name or "token" in name or "ref_boxes" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999))
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    gens: dict[int, SceneGenerator] = {}
    feed = Prefetcher(lambda: sample_batch(rng, gens, batch=args.batch, size=size, spec=spec))
    budget = args.minutes * 60
    warmup = args.warmup
    start = time.time()
    last_eval = start
    step = 0
    history = []
    best = {"map50": -1.0}
    log = open(args.out / "train.log", "a")  # noqa: SIM115 - open for the whole run

    def say(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    say(f"training {DEMO_DETR} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params) at "
        f"{size[0]}x{size[1]}, batch {args.batch}, {args.minutes:.0f} min on {device} ({torch.get_num_threads()} threads)")
    while True:
        elapsed = time.time() - start
        if elapsed > budget:
            break
        frac = elapsed / budget
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, targets = feed.next()
        x = x.to(device)
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=True):
            _, patches, _ = model.split_tokens(x)
            proposals, layers = model.head.forward_layers(patches, grid)
        loss, stats = criterion([{k: v.float() for k, v in lay.items()} for lay in layers], targets)
        if args.proposal_weight > 0:
            proposal = proposal_loss(proposals, targets, grid, len(DRIVING_CLASSES))
            loss = loss + args.proposal_weight * proposal
            stats["proposal"] = float(proposal)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 20 == 0:
            say(f"step {step} loss {float(loss):.3f} ce {stats['ce']:.3f} l1 {stats['l1']:.3f} giou {stats['giou']:.3f} "
                f"proposal {stats.get('proposal', 0.0):.3f} "
                f"lr {lr:.2e} {(time.time() - start) / step:.2f}s/step")
        if time.time() - last_eval > args.eval_every * 60:
            last_eval = time.time()
            m = evaluate(model, size=size, spec=spec, frames=args.eval_frames, device=device)
            history.append({"step": step, "minutes": round((time.time() - start) / 60, 1), **m})
            say(f"eval step {step}: mAP@.5 {m['map50']:.3f} mAP@[.5:.95] {m['map']:.3f}")
            torch.save(model.state_dict(), args.out / "last.pt")
            if m["map50"] > best["map50"]:
                best = {"step": step, **m}
                torch.save(model.state_dict(), args.out / "demo-detr.pt")
    feed.stop.set()
    final = evaluate(model, size=size, spec=spec, frames=max(args.eval_frames, 300), device=device)
    history.append({"step": step, "minutes": round((time.time() - start) / 60, 1), **final})
    say(f"final eval ({final['images']} held-out frames, {final['objects']} objects): "
        f"mAP@.5 {final['map50']:.3f} mAP@[.5:.95] {final['map']:.3f}")
    torch.save(model.state_dict(), args.out / "demo-detr.pt")
    save_file({k: v.detach().half().contiguous().cpu() for k, v in model.state_dict().items()},
              str(args.out / "demo-detr.safetensors"))
    report = {
        "model": DEMO_DETR, "architecture": "ViT-Tiny/16 encoder + two-stage DETR head (top-30 patch proposals, 3-layer decoder)",
        "input_size": list(size), "classes": list(DRIVING_CLASSES), "steps": step, "batch": args.batch,
        "images_seen": step * args.batch, "minutes": round((time.time() - start) / 60, 1),
        "device": str(device), "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "eval_seed": EVAL_SEED, "final": final, "history": history,
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    say(f"wrote {args.out}/demo-detr.safetensors and report.json")


if __name__ == "__main__":
    main()
