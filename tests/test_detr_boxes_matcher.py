"""DETR's pure parts: box maths, the Hungarian matcher and the set loss."""

from dataclasses import replace

import pytest
import torch

from models.detr.box_ops import box_cxcywh_to_xyxy, box_iou, box_xyxy_to_cxcywh, generalized_box_iou
from models.detr.criterion import SetCriterion
from models.detr.detr import build_detr
from models.detr.matcher import hungarian_match, matching_costs
from tests.conftest import TINY_DETR


def test_box_conversions_round_trip():
    torch.manual_seed(0)
    xy0 = torch.rand(50, 2)
    xyxy = torch.cat([xy0, xy0 + torch.rand(50, 2)], dim=1)
    assert torch.allclose(box_cxcywh_to_xyxy(box_xyxy_to_cxcywh(xyxy)), xyxy, atol=1e-6)
    cxcywh = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    assert torch.allclose(box_cxcywh_to_xyxy(cxcywh), torch.tensor([[0.4, 0.3, 0.6, 0.7]]))


def test_iou_and_giou_hand_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0], [4.0, 0.0, 6.0, 2.0]])
    iou, _ = box_iou(a, b)
    assert torch.allclose(iou, torch.tensor([[1 / 7, 1.0, 0.0]]))
    # enclosing boxes: 3x3 = 9 (union 7), 2x2 (union 4), 6x2 = 12 (union 8)
    expected = torch.tensor([[1 / 7 - 2 / 9, 1.0, 0.0 - 4 / 12]])
    assert torch.allclose(generalized_box_iou(a, b), expected)
    with pytest.raises(ValueError, match="x1 >= x0"):
        generalized_box_iou(torch.tensor([[2.0, 0.0, 1.0, 1.0]]), a)


def _logits_for(classes: list[int], k: int = 3) -> torch.Tensor:
    """(N, k + 1) logits that strongly predict the given class per query."""
    logits = torch.full((len(classes), k + 1), -5.0)
    logits[torch.arange(len(classes)), torch.tensor(classes)] = 5.0
    return logits


def test_matcher_pairs_each_object_with_its_query():
    boxes = torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.8, 0.8, 0.2, 0.2], [0.5, 0.5, 0.3, 0.3]])
    logits = _logits_for([0, 1, 3])  # the third query says "no object"
    targets = [
        {"labels": torch.tensor([1, 0]), "boxes": torch.tensor([[0.8, 0.8, 0.2, 0.2], [0.21, 0.2, 0.1, 0.1]])}
    ]
    ((pred, tgt),) = hungarian_match(logits[None], boxes[None], targets)
    assert dict(zip(tgt.tolist(), pred.tolist())) == {0: 1, 1: 0}


def test_matcher_uses_class_to_break_a_box_tie():
    box = torch.tensor([[0.5, 0.5, 0.2, 0.2]]).repeat(2, 1)  # both queries predict the same box
    logits = _logits_for([2, 1])
    targets = [{"labels": torch.tensor([1]), "boxes": box[:1]}]
    ((pred, tgt),) = hungarian_match(logits[None], box[None], targets)
    assert pred.tolist() == [1] and tgt.tolist() == [0]


def test_matcher_image_without_objects_and_mixed_batch():
    logits, boxes = torch.randn(2, 4, 4), torch.rand(2, 4, 4) * 0.5 + 0.25
    empty = {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}
    one = {"labels": torch.tensor([2]), "boxes": torch.tensor([[0.5, 0.5, 0.1, 0.1]])}
    (p0, t0), (p1, t1) = hungarian_match(logits, boxes, [empty, one])
    assert p0.numel() == 0 and t0.numel() == 0
    assert len(p1) == 1 and t1.tolist() == [0]


def test_matching_costs_are_the_weighted_parts():
    logits, boxes = torch.randn(5, 4), torch.rand(5, 4) * 0.5 + 0.25
    labels, tboxes = torch.tensor([0, 2]), torch.rand(2, 4) * 0.5 + 0.25
    c = matching_costs(logits, boxes, labels, tboxes)
    assert c.total.shape == (5, 2)
    assert torch.allclose(c.total, c.cls + c.bbox + c.giou)
    assert torch.allclose(c.cls, -logits.softmax(-1)[:, labels])
    assert torch.allclose(c.bbox, 5 * (boxes[:, None] - tboxes[None]).abs().sum(-1), atol=1e-6)


def test_criterion_no_object_weight_and_decrease():
    torch.manual_seed(0)
    config = replace(
        TINY_DETR,
        num_classes=3,
        class_names=[],
        num_encoder_layers=1,
        num_decoder_layers=2,
        num_queries=5,
        dropout=0.0,
    )
    model = build_detr(config, norm=torch.nn.BatchNorm2d)
    criterion = SetCriterion(config.num_classes)
    assert criterion.empty_weight.tolist() == pytest.approx([1.0, 1.0, 1.0, 0.1])
    images, mask = torch.randn(2, 3, 64, 64), torch.zeros(2, 64, 64, dtype=torch.bool)
    two = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.2]])
    targets = [
        {"labels": torch.tensor([0, 2]), "boxes": two},
        {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)},
    ]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        loss, parts = criterion(model(images, mask), targets)
        assert set(parts) == {"ce", "bbox", "giou"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0]
