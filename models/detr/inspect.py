"""One DETR forward pass, unpacked into plain arrays for the DETR page (and anyone else who inspects).

`run_detr(model, config, image)` pre-processes one image as the official evaluation does, runs the
model once with full attention capture, and returns a `DetrInspection`: every decoder layer's class
probabilities and boxes for all N queries (S22), and every attention per layer and per head, with
the feature-map height h and width w so that a map reshapes to (h, w). Everything else the page
shows (detections at a threshold, one query's map, encoder attention at a point, the matching cost
on a scene with ground truth) is cheap arithmetic on these arrays, so the model runs once per image.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.optimize import linear_sum_assignment
from torch.nn import functional as F

from models.detr.box_ops import box_xyxy_to_cxcywh
from models.detr.checkpoint import load_checkpoint
from models.detr.detr import DETR, DetrConfig, build_detr
from models.detr.matcher import matching_costs
from models.detr.position_encoding import PositionEmbeddingSine
from models.detr.preprocess import postprocess, preprocess

DEFAULT_WEIGHTS = Path(__file__).parents[2] / "weights" / "detr-shapes"


@dataclass
class DetrInspection:
    """One image through DETR. L_e / L_d encoder / decoder layers, nh heads, N queries, K classes,
    HW = h * w feature positions in row-major order. Boxes are xyxy in pixels of `image`."""

    image: np.ndarray  # (H, W, 3) uint8, the input as given
    resized: tuple[int, int]  # (h, w) the model saw after the official resize
    stride: int  # pixels of the resized image per feature cell (32, or 16 with DC5)
    h: int  # feature-map height
    w: int  # feature-map width
    class_names: list[str]  # K names; index K is "no object"
    logits: np.ndarray  # (L_d, N, K + 1) every decoder layer
    probs: np.ndarray  # (L_d, N, K + 1) softmax of the logits
    boxes: np.ndarray  # (L_d, N, 4) xyxy pixels of `image`
    encoder: np.ndarray  # (L_e, nh, HW, HW) encoder self-attention
    decoder_self: np.ndarray  # (L_d, nh, N, N) decoder self-attention among the queries
    decoder_cross: np.ndarray  # (L_d, nh, N, HW) decoder cross-attention, query -> image position
    pos: np.ndarray  # (d, h, w) the 2-D sine encoding added to Q and K (S20, S21)

    @property
    def num_queries(self) -> int:
        return self.logits.shape[1]

    def scores_labels(self, layer: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """(N,) best real-class probability and its class id per query, after decoder `layer`."""
        real = self.probs[layer, :, :-1]
        return real.max(-1), real.argmax(-1)

    def is_object(self, layer: int = -1) -> np.ndarray:
        """(N,) True where the query's most likely output is a class rather than "no object"."""
        return self.probs[layer].argmax(-1) != self.probs.shape[-1] - 1

    def detections(self, threshold: float, layer: int = -1) -> np.ndarray:
        """Query indices whose best class scores >= threshold, best first (no NMS, S17)."""
        scores, _ = self.scores_labels(layer)
        keep = np.nonzero(scores >= threshold)[0]
        return keep[np.argsort(-scores[keep], kind="stable")]

    def cell_extent(self) -> tuple[float, float]:
        """(height, width) of one feature cell in pixels of `image`."""
        scale_y = self.image.shape[0] / self.resized[0]
        scale_x = self.image.shape[1] / self.resized[1]
        return self.stride * scale_y, self.stride * scale_x

    def cross_maps(self, query: int) -> np.ndarray:
        """(L_d, nh, h, w): where `query` looks in the image, every decoder layer and head."""
        return self.decoder_cross[:, :, query].reshape(*self.decoder_cross.shape[:2], self.h, self.w)

    def encoder_maps(self, y: int, x: int, reverse: bool = False) -> np.ndarray:
        """(L_e, nh, h, w): where feature position (y, x) attends, or with `reverse` which
        positions attend to it (that column does not sum to 1)."""
        i = y * self.w + x
        maps = self.encoder[..., :, i] if reverse else self.encoder[..., i, :]  # (L_e, nh, HW)
        return maps.reshape(*maps.shape[:2], self.h, self.w)


def feature_stride(config: DetrConfig) -> int:
    return 16 if config.dilation else 32


@torch.no_grad()
def run_detr(
    model: DETR, config: DetrConfig, image: Image.Image | np.ndarray, device: str | torch.device = "cpu"
) -> DetrInspection:
    """One image -> `DetrInspection` (one forward pass with capture; everything moved to CPU numpy)."""
    batch = preprocess([image], config.min_size, config.max_size)
    out = model(batch.pixels.to(device), batch.mask.to(device), capture=True)
    per_layer = [
        postprocess(out, batch.orig_sizes, threshold=0.0, layer=i)[0] for i in range(out.aux_logits.shape[0])
    ]
    boxes = torch.stack([d.boxes[d.query_index.argsort()] for d in per_layer])  # (L_d, N, 4) in query order
    att = out.attentions

    def stack(records) -> np.ndarray:
        return torch.stack([r.probs[0] for r in records]).float().cpu().numpy()

    pos = PositionEmbeddingSine(config.d_model // 2, normalize=True)(out.feature_mask.cpu())[0]
    logits = out.aux_logits[:, 0].float().cpu()  # (L_d, N, K + 1)
    return DetrInspection(
        image=np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image),
        resized=batch.sizes[0],
        stride=feature_stride(config),
        h=out.h,
        w=out.w,
        class_names=list(config.class_names) or [f"class {i}" for i in range(config.num_classes)],
        logits=logits.numpy(),
        probs=logits.softmax(-1).numpy(),
        boxes=boxes.float().cpu().numpy(),
        encoder=stack(att.encoder),
        decoder_self=stack(att.decoder_self),
        decoder_cross=stack(att.decoder_cross),
        pos=pos.numpy(),
    )


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


def match_ground_truth(insp: DetrInspection, gt_boxes: np.ndarray, gt_labels: np.ndarray) -> Matching:
    """gt_boxes (M, 4) xyxy pixels of `insp.image`, gt_labels (M,) class ids -> `Matching`."""
    hgt, wgt = insp.image.shape[:2]
    scale = torch.tensor([wgt, hgt, wgt, hgt], dtype=torch.float32)
    pred = box_xyxy_to_cxcywh(torch.from_numpy(insp.boxes[-1]).float() / scale)
    tgt = box_xyxy_to_cxcywh(torch.as_tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4) / scale)
    costs = matching_costs(torch.from_numpy(insp.logits[-1]), pred, torch.as_tensor(gt_labels).long(), tgt)
    rows, cols = linear_sum_assignment(costs.total.numpy()) if len(gt_labels) else (np.zeros(0, int),) * 2
    return Matching(
        cls=costs.cls.numpy(),
        bbox=costs.bbox.numpy(),
        giou=costs.giou.numpy(),
        total=costs.total.numpy(),
        pred=np.asarray(rows),
        gt=np.asarray(cols),
    )


def load_default(device: str = "cpu") -> tuple[DETR, DetrConfig]:
    """The shipped default detector (weights/detr-shapes), or FileNotFoundError while none is shipped."""
    if not (DEFAULT_WEIGHTS / "model.safetensors").exists():
        raise FileNotFoundError(
            f"no trained default detector at {DEFAULT_WEIGHTS} yet; "
            "train it with `python -m scripts.train_detr`"
        )
    return load_checkpoint(DEFAULT_WEIGHTS, device=device)


def untrained(config: DetrConfig, seed: int = 0, device: str = "cpu") -> tuple[DETR, DetrConfig]:
    """A randomly initialised DETR of `config` (fixed seed): for architecture, timing and tests."""
    torch.manual_seed(seed)
    return build_detr(config).eval().to(device), config
