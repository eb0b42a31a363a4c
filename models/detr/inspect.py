"""What the DETR page reads off one `DetrResult` (see `api.py`): cheap arithmetic on the kept result.

`api.run_detr` runs the model once per image; everything the page shows after that (detections at a
threshold, one query's maps, encoder attention at a point and its reverse, the matching against ground
truth, the positional encoding, maps upsampled to pixels) comes from these helpers, so changing a
control never runs the model again. Encoder maps are computed for the one position a view shows, from
the kept q and k: a row is a softmax of q_i·K, a column is exp(Q·k_j - logsumexp of each row).
`untrained` builds a randomly initialised detector of a given config, for the architecture views and
the benchmarks.
"""

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch.nn import functional as F

from models.detr.api import Detector, DetrResult
from models.detr.box_ops import box_xyxy_to_cxcywh
from models.detr.detr import DetrConfig, build_detr
from models.detr.matcher import matching_costs
from models.detr.position_encoding import PositionEmbeddingSine


def scores_labels(result: DetrResult, layer: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(N,) best real-class probability and its class id per query, after decoder `layer`."""
    real = result.layer_probs[layer, :, :-1]
    return real.max(-1), real.argmax(-1)


def is_object(result: DetrResult, layer: int = -1) -> np.ndarray:
    """(N,) True where the query's most likely output is a class rather than "no object"."""
    probs = result.layer_probs[layer]
    return probs.argmax(-1) != probs.shape[-1] - 1


def detections(result: DetrResult, threshold: float, layer: int = -1) -> np.ndarray:
    """Query indices whose best class scores >= threshold, best first (no NMS, S17)."""
    scores, _ = scores_labels(result, layer)
    keep = np.nonzero(scores >= threshold)[0]
    return keep[np.argsort(-scores[keep], kind="stable")]


def cell_extent(result: DetrResult) -> tuple[float, float]:
    """(height, width) of one feature cell in pixels of the original image."""
    (H, W), (hin, win) = result.image_size, result.input_size
    return result.stride * H / hin, result.stride * W / win


def share_inside_box(attn: np.ndarray, box, cell: tuple[float, float], image_size: tuple[int, int]) -> float:
    """Share of a feature map's attention mass that lies inside a box, in [0, 1] (0 for an empty map).

    attn (h, w) non-negative, e.g. one query's cross-attention; box (x0, y0, x1, y1) in pixels;
    cell (height, width) of one feature cell in those pixels (`cell_extent`); image_size (H, W).
    Cell (i, j) covers [i·ch, (i+1)·ch) × [j·cw, (j+1)·cw), cut at the image's edge (the last row and
    column overhang it when the resized input is not a multiple of the stride), and its mass is spread
    evenly over the part inside the image: a box covering half of it holds half its mass, so the share
    changes smoothly as the box moves rather than jumping when it crosses a cell centre.
    """
    total = float(attn.sum())
    if total <= 0:
        return 0.0
    x0, y0, x1, y1 = (float(v) for v in box)
    rows = _covered(attn.shape[0], cell[0], image_size[0], y0, y1)  # (h,)
    cols = _covered(attn.shape[1], cell[1], image_size[1], x0, x1)  # (w,)
    return float(rows @ attn @ cols) / total


def _covered(n: int, size: float, limit: float, lo: float, hi: float) -> np.ndarray:
    """(n,) fraction of each cell [k·size, (k+1)·size), cut at `limit`, that lies in [lo, hi)."""
    start = np.arange(n) * size
    end = np.minimum(start + size, limit)
    overlap = np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0, None)
    return np.divide(overlap, end - start, out=np.zeros(n), where=end > start)


@torch.no_grad()
def encoder_maps(result: DetrResult, y: int, x: int, reverse: bool = False) -> np.ndarray:
    """(E, nh, h, w): where feature position (y, x) attends, or with `reverse` which positions
    attend to it (a column of the attention matrix, which need not sum to 1). Every layer and head,
    computed from q and k: E · nh · HW products, not the E · nh · HW² of the whole maps."""
    if not (0 <= y < result.h and 0 <= x < result.w):
        raise ValueError(f"position ({y}, {x}) is outside the {result.h} x {result.w} feature map")
    family, i = result.encoder_attention, y * result.w + x
    mask = None
    if family.mask is not None:
        full = family.mask.expand(family.n_layers, family.n_heads, *family.shape)  # a view, no copy
        mask = full[:, :, :, i] if reverse else full[:, :, i]  # (E, nh, HW)
    if reverse:
        scores = torch.einsum("lhqd,lhd->lhq", family.q, family.k[:, :, i]) * family.scale  # (E, nh, HW)
        maps = (scores - result.encoder_logsumexp).exp()  # softmax of each row, read at key i
        if mask is not None:
            maps = maps.masked_fill(~mask, 0.0)
    else:
        scores = torch.einsum("lhd,lhkd->lhk", family.q[:, :, i], family.k) * family.scale  # (E, nh, HW)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        maps = scores.softmax(-1)
    return maps.float().cpu().numpy().reshape(family.n_layers, family.n_heads, result.h, result.w)


def positional_encoding(result: DetrResult, d_model: int) -> np.ndarray:
    """(d_model, h, w) the 2-D sine encoding added to Q and K of this image's feature map (S20, S21).
    One image is never padded, so the mask is all False."""
    mask = torch.zeros(1, result.h, result.w, dtype=torch.bool)
    return PositionEmbeddingSine(d_model // 2, normalize=True)(mask)[0].numpy()


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(..., h, w) -> (..., H, W) bilinear (align_corners=False, as image resizing)."""
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    lead = t.shape[:-2]
    t = F.interpolate(t.reshape(1, -1, *t.shape[-2:]), size=size, mode="bilinear", align_corners=False)
    return t.reshape(*lead, *size).numpy()


@dataclass
class Matching:
    """The Hungarian matching of the last layer's N predictions to M ground-truth objects (S19)."""

    cls: np.ndarray  # (N, M) weighted class cost, −1 · p(class of object j)
    bbox: np.ndarray  # (N, M) weighted L1 cost, 5 · ‖box_i − box_j‖₁ (normalised cxcywh)
    giou: np.ndarray  # (N, M) weighted GIoU cost, −2 · GIoU
    total: np.ndarray  # (N, M) the sum the assignment minimises
    pred: np.ndarray  # (min(N, M),) matched query indices
    gt: np.ndarray  # (min(N, M),) their ground-truth objects


def match_ground_truth(result: DetrResult, gt_boxes: np.ndarray, gt_labels: np.ndarray) -> Matching:
    """gt_boxes (M, 4) xyxy pixels of the image, gt_labels (M,) class ids -> `Matching`, with the
    matcher's own cost function (`matcher.matching_costs`) on the last decoder layer."""
    H, W = result.image_size
    scale = torch.tensor([W, H, W, H], dtype=torch.float32)
    pred = box_xyxy_to_cxcywh(torch.from_numpy(result.layer_boxes[-1]).float() / scale)
    tgt = box_xyxy_to_cxcywh(torch.as_tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4) / scale)
    log_probs = (
        torch.from_numpy(result.layer_probs[-1]).float().clamp_min(1e-12).log()
    )  # softmax gives probs back
    costs = matching_costs(log_probs, pred, torch.as_tensor(gt_labels).long(), tgt)
    rows, cols = linear_sum_assignment(costs.total.numpy()) if len(gt_labels) else (np.zeros(0, int),) * 2
    return Matching(
        cls=costs.cls.numpy(),
        bbox=costs.bbox.numpy(),
        giou=costs.giou.numpy(),
        total=costs.total.numpy(),
        pred=np.asarray(rows),
        gt=np.asarray(cols),
    )


def untrained(config: DetrConfig, seed: int = 0, device: str = "cpu", name: str = "untrained") -> Detector:
    """A randomly initialised detector of `config` (fixed seed): for the architecture and timing."""
    torch.manual_seed(seed)
    return Detector(model=build_detr(config).eval().to(device), config=config, name=name)
