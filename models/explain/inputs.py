"""DETR's input to the transformer, computed once per image for the explanations that rerun it.

Relevance and ablation rerun DETR's transformer (with gradients, or with heads gated off) many times on
the same image; the ResNet, most of a forward's time, never changes, so it runs once, without a graph.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from models.detr.api import Detector
from models.detr.preprocess import preprocess


@dataclass
class DetrFeatures:
    """What `DETR.predict` takes, for one image. d the transformer width, (h, w) the feature map."""

    src: Tensor  # (1, d, h, w) the backbone's features projected to d channels
    mask: Tensor  # (1, h, w) True where the feature map covers padding
    pos: Tensor  # (1, d, h, w) the 2-D sine positional encoding

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in (self.src, self.mask, self.pos))


@torch.no_grad()
def detr_features(detector: Detector, image) -> DetrFeatures:
    """image: PIL image or (H, W, 3) uint8 array, pre-processed as `api.run_detr` does."""
    model, config = detector.model, detector.config
    device = next(model.parameters()).device
    batch = preprocess([image], config.min_size, config.max_size)
    feat, mask, pos = model.backbone(batch.pixels.to(device), batch.mask.to(device))
    return DetrFeatures(src=model.input_proj(feat), mask=mask, pos=pos)
