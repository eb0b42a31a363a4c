"""Images in, detections out: DETR's official evaluation transform and post-processing.

`preprocess(images, min_size, max_size)` resizes each image so that its shorter side is `min_size`
(800 for the official checkpoints) unless the longer side would pass `max_size` (1333), normalises
with the ImageNet mean and std, and pads a batch at the bottom and right to a common size, with a
mask that is True on the padding. `postprocess` turns a `DetrOutput` into boxes in pixels of the
original images: softmax over the classes, drop the "no object" column, take each query's best class,
convert (cx, cy, w, h) to (x0, y0, x1, y1). There is no non-maximum suppression anywhere (S17).
"""

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from models.detr.box_ops import box_cxcywh_to_xyxy
from models.detr.detr import DetrOutput

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PIXELS = 40_000_000  # larger uploads are refused rather than decoded


@dataclass
class Batch:
    pixels: Tensor  # (B, 3, H, W) float32 normalised, zero on the padding
    mask: Tensor  # (B, H, W) bool, True on the padding
    sizes: list[tuple[int, int]]  # (h, w) of each resized image before padding
    orig_sizes: list[tuple[int, int]]  # (h, w) of each input image


@dataclass
class Detections:
    """The detections of one image, all queries above the threshold, best first."""

    boxes: Tensor  # (D, 4) xyxy in pixels of the original image
    scores: Tensor  # (D,) probability of the predicted class
    labels: Tensor  # (D,) class id
    query_index: Tensor  # (D,) which of the N object queries produced each detection


def resized_size(h: int, w: int, min_size: int, max_size: int | None) -> tuple[int, int]:
    """(h, w) after the official `get_size_with_aspect_ratio` resize. For aspect ratios the official one
    breaks on (1 x 10,000 would become 0 x 0; 1 x 2,000 would stay longer than max_size), the longer side
    is max_size and the shorter at least 1 pixel, so that the backbone has a feature cell across."""
    if h < 1 or w < 1:
        raise ValueError(f"an image of {h} x {w} pixels has no pixels to resize")
    out = _official_size(h, w, min_size, max_size)
    if max_size is not None and (min(out) < 1 or max(out) > max_size):
        short = max(1, int(round(max_size * min(h, w) / max(h, w))))
        return (max_size, short) if h > w else (short, max_size)
    return out


def _official_size(h: int, w: int, min_size: int, max_size: int | None) -> tuple[int, int]:
    size = min_size
    if max_size is not None:
        small, large = float(min(h, w)), float(max(h, w))
        if large / small * size > max_size:
            size = int(round(max_size * small / large))
    if (w <= h and w == size) or (h <= w and h == size):
        return h, w
    if w < h:
        return int(size * h / w), size
    return size, int(size * w / h)


def to_pil(image) -> Image.Image:
    """A PIL image or an (H, W, 3) uint8 array -> RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {arr.shape} dtype {arr.dtype}")
    return Image.fromarray(arr)


def normalise(arr: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32, ImageNet mean and std."""
    x = torch.from_numpy(np.array(arr, dtype=np.uint8))  # a copy: arrays from PIL are read-only
    x = x.permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (x - mean) / std


def pad_batch(tensors: list[Tensor]) -> tuple[Tensor, Tensor]:
    """(3, h_i, w_i) tensors -> (B, 3, H, W) zero-padded bottom-right and (B, H, W) mask, True = padding."""
    hmax = max(t.shape[1] for t in tensors)
    wmax = max(t.shape[2] for t in tensors)
    pixels = torch.zeros(len(tensors), 3, hmax, wmax)
    mask = torch.ones(len(tensors), hmax, wmax, dtype=torch.bool)
    for i, t in enumerate(tensors):
        pixels[i, :, : t.shape[1], : t.shape[2]] = t
        mask[i, : t.shape[1], : t.shape[2]] = False
    return pixels, mask


def preprocess(images: list, min_size: int = 800, max_size: int | None = 1333) -> Batch:
    """PIL images or (H, W, 3) uint8 arrays -> a padded, normalised `Batch`."""
    if not images:
        raise ValueError("preprocess needs at least one image")
    tensors, sizes, orig = [], [], []
    for image in images:
        pil = to_pil(image)
        h, w = resized_size(pil.height, pil.width, min_size, max_size)
        orig.append((pil.height, pil.width))
        sizes.append((h, w))
        if (h, w) != (pil.height, pil.width):
            pil = pil.resize((w, h), Image.BILINEAR)
        tensors.append(normalise(np.asarray(pil)))
    pixels, mask = pad_batch(tensors)
    return Batch(pixels=pixels, mask=mask, sizes=sizes, orig_sizes=orig)


def postprocess(
    output: DetrOutput, orig_sizes: list[tuple[int, int]], threshold: float = 0.0, layer: int = -1
) -> list[Detections]:
    """Detections per image from decoder layer `layer` (default the last), scores >= threshold."""
    logits, boxes = output.aux_logits[layer], output.aux_boxes[layer]  # (B, N, K + 1), (B, N, 4)
    prob = logits.softmax(-1)[..., :-1]  # drop "no object"
    scores, labels = prob.max(-1)  # (B, N)
    results = []
    for b, (h, w) in enumerate(orig_sizes):
        scale = torch.tensor([w, h, w, h], dtype=boxes.dtype, device=boxes.device)
        xyxy = box_cxcywh_to_xyxy(boxes[b]) * scale  # (N, 4) pixels
        keep = torch.nonzero(scores[b] >= threshold).flatten()
        keep = keep[scores[b, keep].argsort(descending=True)]
        results.append(
            Detections(boxes=xyxy[keep], scores=scores[b, keep], labels=labels[b, keep], query_index=keep)
        )
    return results
