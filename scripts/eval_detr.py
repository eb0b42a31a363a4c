"""Evaluate a DETR on held-out procedural scenes: COCO AP with pycocotools, and where it attends.

    python -m scripts.eval_detr                                  # the shipped weights/detr-shapes
    python -m scripts.eval_detr --weights path/to/dir --n 500

Scenes use seeds EVAL_SEED_OFFSET + i, which training never draws. Every query's best class and
score is a detection (as the official DETR evaluation; no threshold, no NMS); AP is
`COCOeval(..., "bbox")`. The attention figure: for each detection with score >= --attn-threshold,
the last decoder layer's cross-attention, averaged over heads, is spread uniformly over the pixels
of each feature cell, and the share of its mass inside the detection's own box
(`models.detr.inspect.share_inside_box`, the figure the DETR page shows) is averaged over all such
detections. The same share for a uniform attention (the box's area inside the image / image area) is
printed beside it.
"""

import argparse
import contextlib
import io
import json
import sys

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from models.detr.api import DEFAULT_WEIGHTS, load_detr
from models.detr.box_ops import box_cxcywh_to_xyxy
from models.detr.inspect import share_inside_box
from models.detr.preprocess import preprocess
from models.detr.scenes import EVAL_SEED_OFFSET, make_scene


@torch.no_grad()
def evaluate(
    weights, n: int = 500, batch_size: int = 25, attn_threshold: float = 0.5, verbose: bool = True
) -> dict:
    detector = load_detr(weights)
    model, config = detector.model, detector.config
    size = config.min_size
    stride = model.backbone[0].stride
    images, annotations, detections, shares, uniform = [], [], [], [], []
    for start in range(0, n, batch_size):
        scenes = [make_scene(EVAL_SEED_OFFSET + i, size) for i in range(start, min(n, start + batch_size))]
        batch = preprocess([s.image for s in scenes], config.min_size, config.max_size)
        out = model(batch.pixels, batch.mask, capture=True)
        probs = out.pred_logits.softmax(-1)[..., :-1]  # (B, N, K)
        scores, labels = probs.max(-1)
        boxes = box_cxcywh_to_xyxy(out.pred_boxes) * size  # (B, N, 4) pixels (square scenes)
        cross = torch.stack([r.probs for r in out.attentions.decoder_cross])[-1].mean(1)  # (B, N, HW)
        for b, scene in enumerate(scenes):
            image_id = start + b + 1
            images.append({"id": image_id, "width": size, "height": size})
            for box, label, mask in zip(scene.boxes, scene.labels, scene.masks):
                x0, y0, x1, y1 = box.tolist()
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": int(label) + 1,
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "area": float(mask.sum()),
                        "iscrowd": 0,
                    }
                )
            for q in range(boxes.shape[1]):
                x0, y0, x1, y1 = boxes[b, q].tolist()
                detections.append(
                    {
                        "image_id": image_id,
                        "category_id": int(labels[b, q]) + 1,
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "score": float(scores[b, q]),
                    }
                )
                if scores[b, q] >= attn_threshold:
                    att = cross[b, q].reshape(out.h, out.w).numpy()
                    cell, box = (stride, stride), (x0, y0, x1, y1)
                    shares.append(share_inside_box(att, box, cell, (size, size)))
                    uniform.append(share_inside_box(np.ones_like(att), box, cell, (size, size)))
        if verbose:
            print(f"\r{min(n, start + batch_size)}/{n} scenes", end="", file=sys.stderr, flush=True)
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(config.class_names)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        ev.summarize()
    if verbose:
        print("\n" + summary.getvalue(), file=sys.stderr)
    return {
        "weights": str(weights),
        "scenes": n,
        "objects": len(annotations),
        "AP": float(ev.stats[0]),
        "AP50": float(ev.stats[1]),
        "AP75": float(ev.stats[2]),
        "attention_in_box": float(np.mean(shares)) if shares else float("nan"),
        "uniform_attention_in_box": float(np.mean(uniform)) if uniform else float("nan"),
        "detections_above_attn_threshold": len(shares),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--attn-threshold", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(json.dumps(evaluate(args.weights, args.n, args.batch_size, args.attn_threshold), indent=2))


if __name__ == "__main__":
    main()
