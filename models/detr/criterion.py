"""DETR's set loss: match, then classification + L1 + GIoU on the matched pairs, at every decoder layer.

Cross-entropy covers all N predictions (unmatched ones target "no object", weighted 0.1 because they
dominate); L1 and GIoU cover matched pairs only and are normalised by the number of objects in the
batch. The same loss is added for every intermediate decoder layer (auxiliary losses), as the
official `SetCriterion` with `aux_loss=True`.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.detr.box_ops import box_cxcywh_to_xyxy, generalized_box_iou
from models.detr.detr import DetrOutput
from models.detr.matcher import hungarian_match

WEIGHT_CE, WEIGHT_BBOX, WEIGHT_GIOU = 1.0, 5.0, 2.0


class SetCriterion(nn.Module):
    def __init__(self, num_classes: int, eos_coef: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight)

    def layer_losses(self, logits: Tensor, boxes: Tensor, targets: list[dict], num_boxes: float) -> dict:
        """logits (B, N, K + 1), boxes (B, N, 4) of one decoder layer -> {"ce", "bbox", "giou"}."""
        indices = hungarian_match(logits, boxes, targets)
        batch_idx = torch.cat([torch.full_like(p, b) for b, (p, _) in enumerate(indices)])
        pred_idx = torch.cat([p for p, _ in indices])
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
        )  # (B, N) "no object" unless matched
        matched_labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)]).to(logits.device)
        target_classes[batch_idx, pred_idx] = matched_labels
        ce = F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)
        src = boxes[batch_idx, pred_idx]  # (M, 4)
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)]).to(boxes)
        l1 = F.l1_loss(src, tgt, reduction="sum") / num_boxes
        if len(src):
            giou = generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt))  # (M, M)
            giou = (1 - torch.diag(giou)).sum()
        else:
            giou = src.sum()
        return {"ce": ce, "bbox": l1, "giou": giou / num_boxes}

    def forward(self, output: DetrOutput, targets: list[dict]) -> tuple[Tensor, dict]:
        """-> (weighted total over all decoder layers, {"ce", "bbox", "giou"} of the last layer, detached)."""
        num_boxes = max(float(sum(len(t["labels"]) for t in targets)), 1.0)
        total = output.aux_logits.new_zeros(())
        for logits, boxes in zip(output.aux_logits, output.aux_boxes):
            parts = self.layer_losses(logits, boxes, targets, num_boxes)
            total = total + (
                WEIGHT_CE * parts["ce"] + WEIGHT_BBOX * parts["bbox"] + WEIGHT_GIOU * parts["giou"]
            )
        return total, {k: v.detach() for k, v in parts.items()}
