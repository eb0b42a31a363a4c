"""Hungarian matching between DETR's N predictions and an image's M ground-truth objects.

The cost of assigning prediction i to object j is
    1 · (−p_i(class_j)) + 5 · ‖box_i − box_j‖₁ + 2 · (−GIoU(box_i, box_j)),
as the official `HungarianMatcher`; `scipy.optimize.linear_sum_assignment` then picks the one-to-one
assignment of least total cost. Every unmatched prediction is trained towards "no object", which is
why DETR needs no NMS (S17). `matching_costs` exposes the three parts for display.
"""

from dataclasses import dataclass

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from models.detr.box_ops import box_cxcywh_to_xyxy, generalized_box_iou

COST_CLASS, COST_BBOX, COST_GIOU = 1.0, 5.0, 2.0


@dataclass
class MatchCosts:
    """Cost matrices of one image, each (N predictions, M objects), already weighted."""

    cls: Tensor  # −1 · probability of the object's class
    bbox: Tensor  # 5 · L1 distance of the normalised (cx, cy, w, h) boxes
    giou: Tensor  # −2 · GIoU
    total: Tensor  # the sum, what the assignment minimises


def matching_costs(
    logits: Tensor,
    boxes: Tensor,
    tgt_labels: Tensor,
    tgt_boxes: Tensor,
    cost_class: float = COST_CLASS,
    cost_bbox: float = COST_BBOX,
    cost_giou: float = COST_GIOU,
) -> MatchCosts:
    """logits (N, K + 1), boxes (N, 4) cxcywh; tgt_labels (M,), tgt_boxes (M, 4) cxcywh."""
    prob = logits.softmax(-1)  # (N, K + 1)
    c_cls = -cost_class * prob[:, tgt_labels]  # (N, M)
    c_bbox = cost_bbox * torch.cdist(boxes, tgt_boxes.to(boxes.dtype), p=1)
    c_giou = -cost_giou * generalized_box_iou(box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(tgt_boxes))
    return MatchCosts(cls=c_cls, bbox=c_bbox, giou=c_giou, total=c_cls + c_bbox + c_giou)


@torch.no_grad()
def hungarian_match(logits: Tensor, boxes: Tensor, targets: list[dict]) -> list[tuple[Tensor, Tensor]]:
    """logits (B, N, K + 1), boxes (B, N, 4); targets[b] = {"labels": (M_b,), "boxes": (M_b, 4) cxcywh}.

    Returns per image (pred_idx, tgt_idx), two int64 tensors of length min(N, M_b): prediction
    pred_idx[k] is matched to object tgt_idx[k]. An image with no objects gives two empty tensors.
    """
    out = []
    for b, t in enumerate(targets):
        if len(t["labels"]) == 0:
            empty = torch.empty(0, dtype=torch.int64)
            out.append((empty, empty))
            continue
        cost = matching_costs(logits[b].float(), boxes[b].float(), t["labels"], t["boxes"].float()).total
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        out.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
    return out
