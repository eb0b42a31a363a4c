"""Train the app's default detector: a small DETR on procedural shape scenes, from scratch.

    python -m scripts.train_detr --steps 31000 --decay-steps 7000   # train or resume, export: the shipped run
    python -m scripts.train_detr --steps 40000 --decay-steps 7000   # go on: full rate again, then decay
    python -m scripts.train_detr --export-only         # write weights/ from the last checkpoint

The model is `models.detr` itself with the `SMALL_CONFIG` sizes. Its ResNet-18-style backbone trains
with ordinary batch norm (there is no pretrained backbone to freeze); the exported state dict loads
into the frozen-batch-norm model unchanged, so the shipped detector is the same code as DETR-R50.
Every step draws fresh scenes (seeds step * batch + i), so a resumed run sees exactly the images it
would have seen, and none of the held-out evaluation scenes. Checkpoints (model, optimiser, step) go
to --out every --ckpt-every steps; an existing checkpoint there is resumed automatically.
"""

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from models.detr.api import SMALL_CONFIG
from models.detr.box_ops import box_xyxy_to_cxcywh
from models.detr.criterion import SetCriterion
from models.detr.detr import DetrConfig, build_detr
from models.detr.preprocess import normalise
from models.detr.scenes import TRAIN_SEED_OFFSET, make_scene


def scene_batch(first_seed: int, n: int, size: int) -> tuple[torch.Tensor, list[dict]]:
    """n scenes -> (n, 3, size, size) normalised pixels and DETR targets (normalised cxcywh boxes)."""
    pixels, targets = [], []
    for i in range(n):
        s = make_scene(first_seed + i, size)
        pixels.append(normalise(s.image))
        boxes = box_xyxy_to_cxcywh(torch.from_numpy(s.boxes)) / size
        targets.append({"labels": torch.from_numpy(s.labels), "boxes": boxes})
    return torch.stack(pixels), targets


def export(model: nn.Module, config: DetrConfig, out_dir: Path) -> None:
    """model.safetensors (float32, without BatchNorm's num_batches_tracked) + config.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().float().contiguous()
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    save_file(state, str(out_dir / "model.safetensors"))
    (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def lr_factor(step: int, total: int, warmup: int, decay: int) -> float:
    """Linear warm-up, constant, then cosine down to 5 % over the last `decay` steps of the run."""
    if step < warmup:
        return (step + 1) / warmup
    start = total - decay
    if step < start:
        return 1.0
    t = min(1.0, (step - start) / max(1, decay))
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=31000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--lr-backbone", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--clip", type=float, default=0.1, help="gradient-norm clipping, as the official 0.1")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument(
        "--decay-steps",
        type=int,
        default=None,
        help="cosine decay over the last N steps (default a quarter of --steps); to finish a run "
        "early, resume with --steps <current + N> --decay-steps N",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads; on a shared 2-core machine 2 threads ran 20x slower than 1",
    )
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--out", type=Path, default=Path("artifacts/detr-shapes"))
    p.add_argument("--export", type=Path, default=Path("weights/detr-shapes"))
    p.add_argument("--export-only", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--backbone-width",
        type=int,
        default=SMALL_CONFIG.backbone_width,
        help="ResNet stem channels (a resumed run keeps the width it was started with)",
    )
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ckpt_path = args.out / "last.pt"
    ckpt = torch.load(ckpt_path, map_location=args.device, weights_only=True) if ckpt_path.exists() else None
    if ckpt is not None and "config" in ckpt:
        config = DetrConfig.from_dict(ckpt["config"])
    else:
        config = dataclasses.replace(SMALL_CONFIG, backbone_width=args.backbone_width)
    size = config.min_size
    model = build_detr(config, norm=nn.BatchNorm2d).to(args.device)
    criterion = SetCriterion(config.num_classes).to(args.device)
    backbone_params = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    other_params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    optimizer = torch.optim.AdamW(
        [{"params": other_params, "lr": args.lr}, {"params": backbone_params, "lr": args.lr_backbone}],
        weight_decay=args.weight_decay,
    )
    base_lrs = [args.lr, args.lr_backbone]
    step = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step = ckpt["step"]
        print(f"resumed from {ckpt_path} at step {step}", file=sys.stderr)
    if args.export_only:
        export(model, config, args.export)
        print(f"exported step {step} to {args.export}", file=sys.stderr)
        return

    def save() -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "config": config.to_dict(),
            },
            tmp,
        )
        tmp.replace(ckpt_path)  # atomic: a kill mid-save never leaves a broken checkpoint

    decay = args.steps // 4 if args.decay_steps is None else args.decay_steps
    model.train()
    t0, ema = time.time(), None
    start_step = step
    while step < args.steps:
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * lr_factor(step, args.steps, args.warmup, decay)
        first_seed = TRAIN_SEED_OFFSET + args.seed * 10**8 + step * args.batch_size
        pixels, targets = scene_batch(first_seed, args.batch_size, size)
        pixels = pixels.to(args.device)
        targets = [{k: v.to(args.device) for k, v in t.items()} for t in targets]
        mask = torch.zeros(pixels.shape[0], size, size, dtype=torch.bool, device=args.device)
        loss, parts = criterion(model(pixels, mask), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        step += 1
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % args.ckpt_every == 0 or step == args.steps:
            save()
        rate = (step - start_step) / (time.time() - t0)
        done = int(30 * step / args.steps)
        print(
            f"\r[{'#' * done}{'.' * (30 - done)}] {step}/{args.steps} loss {ema:.3f} "
            f"(ce {parts['ce']:.3f} l1 {parts['bbox']:.3f} giou {parts['giou']:.3f}) "
            f"{rate:.2f} it/s, eta {(args.steps - step) / max(rate, 1e-9) / 60:.0f} min",
            end="\n" if step % 50 == 0 else "",
            file=sys.stderr,
            flush=True,
        )
    export(model, config, args.export)
    print(f"\nexported step {step} to {args.export}", file=sys.stderr)


if __name__ == "__main__":
    main()
