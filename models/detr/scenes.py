"""Procedural scenes for training and evaluating our default detector: shapes on textured backgrounds.

Six classes (`SHAPE_CLASSES`) in random colours, sizes from small to large, random rotations and
partial overlaps, on a noisy, gradient, striped or checked background, 1–8 objects per image.
`make_scene(seed)` is deterministic: the same seed gives the same pixels, boxes and masks.

Later shapes are drawn over earlier ones; each object's mask is its *visible* part and its box is
the tight box of that mask (COCO convention), in pixels, xyxy with exclusive right/bottom edges:
a mask whose pixels span columns 3..9 has x0 = 3, x1 = 10. A placement that would hide more than
30 % of an earlier object is retried, so every object stays recognisable.

Training uses seeds from `TRAIN_SEED_OFFSET` upwards, evaluation from `EVAL_SEED_OFFSET`: the two
ranges never meet.
"""

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPE_CLASSES = ("circle", "square", "triangle", "star", "ring", "cross")
TRAIN_SEED_OFFSET = 0
EVAL_SEED_OFFSET = 1_000_000_000
MAX_HIDDEN = 0.3  # largest share of an earlier object a new one may cover
MIN_VISIBLE_PIXELS = 12


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    boxes: np.ndarray  # (M, 4) float32 xyxy pixels, exclusive right/bottom edges
    labels: np.ndarray  # (M,) int64 index into SHAPE_CLASSES
    masks: np.ndarray  # (M, H, W) bool visible pixels of each object


def _polygon(cx: float, cy: float, radii: list[float], angle: float) -> list[tuple[float, float]]:
    """Vertices at the given radii, evenly spaced in angle, starting at `angle` (radians)."""
    n = len(radii)
    return [
        (cx + r * math.cos(angle + 2 * math.pi * i / n), cy + r * math.sin(angle + 2 * math.pi * i / n))
        for i, r in enumerate(radii)
    ]


def _cross(cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    t = 0.33 * r  # half the arm thickness
    pts = [
        (t, r),
        (t, t),
        (r, t),
        (r, -t),
        (t, -t),
        (t, -r),
        (-t, -r),
        (-t, -t),
        (-r, -t),
        (-r, t),
        (-t, t),
        (-t, r),
    ]
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def shape_mask(kind: str, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """(size, size) bool mask of one shape of circumradius r centred at (cx, cy)."""
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
        ri = 0.55 * r
        draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    elif kind == "square":
        draw.polygon(_polygon(cx, cy, [r] * 4, angle), fill=1)
    elif kind == "triangle":
        draw.polygon(_polygon(cx, cy, [r] * 3, angle), fill=1)
    elif kind == "star":
        draw.polygon(_polygon(cx, cy, [r, 0.45 * r] * 5, angle), fill=1)
    elif kind == "cross":
        draw.polygon(_cross(cx, cy, r, angle), fill=1)
    else:
        raise ValueError(f"unknown shape {kind!r}; known: {SHAPE_CLASSES}")
    return np.asarray(img, dtype=bool)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float in [0, 255]: one of four textures, with pixel noise on top."""
    base = rng.uniform(40, 215, size=3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = rng.integers(4)
    if kind == 0:  # gradient
        direction = rng.uniform(-1, 1, size=2)
        field = (xx * direction[0] + yy * direction[1])[..., None] * rng.uniform(-60, 60, size=3)
    elif kind == 1:  # stripes
        period = rng.uniform(0.05, 0.2)
        theta = rng.uniform(0, math.pi)
        phase = (xx * math.cos(theta) + yy * math.sin(theta)) / period
        field = (np.floor(phase) % 2)[..., None] * rng.uniform(-35, 35, size=3)
    elif kind == 2:  # checks
        cell = rng.uniform(0.06, 0.2)
        field = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2)[..., None] * rng.uniform(-35, 35, size=3)
    else:  # smooth blobs: low-resolution noise upsampled
        low = rng.uniform(-30, 30, size=(5, 5, 3)).astype(np.float32)
        field = (
            np.asarray(
                Image.fromarray(((low + 30) * 4).astype(np.uint8)).resize((size, size), Image.BILINEAR),
                dtype=np.float32,
            )
            / 4
            - 30
        )
    noise = rng.normal(0, rng.uniform(2, 14), size=(size, size, 3))
    return base + field + noise


def _colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A random RGB colour at least 80 (Euclidean) away from `avoid` (the local background mean)."""
    for _ in range(50):
        c = rng.uniform(0, 255, size=3)
        if np.linalg.norm(c - avoid) >= 80:
            return c
    return 255 - avoid


def make_scene(seed: int, size: int = 128, min_objects: int = 1, max_objects: int = 8) -> Scene:
    """One deterministic scene of `size` x `size` pixels."""
    rng = np.random.default_rng(seed)
    canvas = _background(rng, size)
    n_target = int(rng.integers(min_objects, max_objects + 1))
    masks: list[np.ndarray] = []
    labels: list[int] = []
    for _ in range(n_target):
        for _attempt in range(30):
            r = size * rng.uniform(0.06, 0.24)
            cx, cy = rng.uniform(r, size - r, size=2)
            label = int(rng.integers(len(SHAPE_CLASSES)))
            mask = shape_mask(SHAPE_CLASSES[label], size, cx, cy, r, rng.uniform(0, 2 * math.pi))
            if all((m & mask).sum() <= MAX_HIDDEN * m.sum() for m in masks):
                break
        else:
            continue
        masks = [m & ~mask for m in masks]
        colour = _colour(rng, canvas[mask].mean(axis=0))
        shade = rng.normal(0, 6, size=(int(mask.sum()), 1))
        canvas[mask] = colour + shade
        masks.append(mask)
        labels.append(label)
    keep = [i for i, m in enumerate(masks) if m.sum() >= MIN_VISIBLE_PIXELS]
    masks = [masks[i] for i in keep]
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for i, m in enumerate(masks):
        rows, cols = np.nonzero(m)
        boxes[i] = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    return Scene(
        image=np.clip(canvas, 0, 255).astype(np.uint8),
        boxes=boxes,
        labels=np.asarray([labels[i] for i in keep], dtype=np.int64),
        masks=np.stack(masks) if masks else np.zeros((0, size, size), dtype=bool),
    )
