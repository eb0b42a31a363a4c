"""The DETR API the app uses: load a detector, run it on one image, get plain numpy results.

    from models.detr.api import load_detr, run_detr
    detector = load_detr()                     # our shapes detector from weights/detr-shapes
    detector = load_detr("detr-r50-e632da11.pth")   # or an official / Hugging Face checkpoint
    result = run_detr(detector, pil_image, threshold=0.7)
    result.boxes, result.scores, result.label_names  # the detections, best first, no NMS (S17)
    result.decoder_cross[-1, :, q]           # (nh, h, w) where query q looked in the last layer

`load_detr(path=None, device="cpu") -> Detector` raises `CheckpointError` (a `ModelLoadError` and a
ValueError) with a clear message for anything it cannot load. `run_detr` pre-processes as the official
evaluation (shorter side `config.min_size`, longer <= `config.max_size`, ImageNet normalisation), runs one
forward pass with every attention captured, and returns a `DetrResult` of numpy arrays; its docstring
lists the shapes.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.detr.box_ops import box_cxcywh_to_xyxy
from models.detr.checkpoint import CheckpointError, load_checkpoint
from models.detr.detr import DETR, DetrConfig
from models.detr.preprocess import preprocess
from models.detr.scenes import SHAPE_CLASSES

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "detr-shapes"

__all__ = ["CheckpointError", "DEFAULT_WEIGHTS", "Detector", "DetrResult", "load_detr", "run_detr"]


# The sizes of our default detector, weights/detr-shapes (trained by `python -m scripts.train_detr`).
SMALL_CONFIG = DetrConfig(
    num_classes=len(SHAPE_CLASSES),
    backbone_depth=18,
    backbone_width=16,
    dilation=True,
    d_model=128,
    n_heads=8,
    num_encoder_layers=3,
    num_decoder_layers=3,
    dim_feedforward=512,
    dropout=0.0,
    num_queries=20,
    min_size=128,
    max_size=256,
    class_names=list(SHAPE_CLASSES),
)


@dataclass
class Detector:
    model: DETR  # in eval mode
    config: DetrConfig  # sizes, class names, pre-processing sizes
    name: str  # for display: the directory or file name

    @property
    def class_names(self) -> list[str]:
        return self.config.class_names


@dataclass
class DetrResult:
    """One image through DETR. N queries, K classes, L decoder layers, E encoder layers, nh heads,
    (h, w) the feature map. Boxes are xyxy in pixels of the original image."""

    image_size: tuple[int, int]  # (H, W) of the input image
    input_size: tuple[int, int]  # (H', W') after the resize the model saw
    h: int  # feature-map rows (a cell is `stride` pixels of the resized image)
    w: int  # feature-map columns
    stride: int  # 32, or 16 for DC5 / our shapes model: pixels of the resized image per cell
    boxes: np.ndarray  # (D, 4) detections with score >= threshold, best first
    scores: np.ndarray  # (D,)
    labels: np.ndarray  # (D,) class ids
    label_names: list[str]  # (D,)
    query_index: np.ndarray  # (D,) which query made each detection
    layer_probs: np.ndarray  # (L, N, K + 1) softmax per decoder layer; last column "no object"
    layer_boxes: np.ndarray  # (L, N, 4) every query's box at every decoder layer (aux outputs, S22)
    encoder: np.ndarray  # (E, nh, h, w, h, w) encoder self-attention: [l, head, qy, qx, ky, kx]
    decoder_self: np.ndarray  # (L, nh, N, N) decoder self-attention between queries
    decoder_cross: np.ndarray  # (L, nh, N, h, w) where each query looks in the feature map
    class_names: list[str]  # names of ids 0..K-1


def load_detr(path: str | Path | None = None, device: str = "cpu") -> Detector:
    """Our default shapes detector when path is None, else any format `checkpoint.py` reads."""
    path = DEFAULT_WEIGHTS if path is None else Path(path)
    model, config = load_checkpoint(path, device=device)
    return Detector(model=model, config=config, name=path.name)


@torch.no_grad()
def run_detr(detector: Detector, image, threshold: float = 0.7) -> DetrResult:
    """image: PIL image or (H, W, 3) uint8 array. See `DetrResult` for what comes back."""
    model, config = detector.model, detector.config
    device = next(model.parameters()).device
    batch = preprocess([image], config.min_size, config.max_size)
    out = model(batch.pixels.to(device), batch.mask.to(device), capture=True)
    (H, W), (hin, win) = batch.orig_sizes[0], batch.sizes[0]
    h, w = out.h, out.w
    probs = out.aux_logits[:, 0].softmax(-1)  # (L, N, K + 1)
    scale = torch.tensor([W, H, W, H], dtype=torch.float32, device=device)
    layer_boxes = box_cxcywh_to_xyxy(out.aux_boxes[:, 0].float()) * scale  # (L, N, 4)
    scores, labels = probs[-1, :, :-1].max(-1)  # (N,)
    keep = torch.nonzero(scores >= threshold).flatten()
    keep = keep[scores[keep].argsort(descending=True)]
    att = out.attentions
    names = config.class_names or [f"class {i}" for i in range(config.num_classes)]

    def stack(records, shape) -> np.ndarray:
        return torch.stack([r.probs[0] for r in records]).reshape(len(records), *shape).float().cpu().numpy()

    nh, n = att.encoder[0].probs.shape[1], probs.shape[1]
    return DetrResult(
        image_size=(H, W),
        input_size=(hin, win),
        h=h,
        w=w,
        stride=model.backbone[0].stride,
        boxes=layer_boxes[-1, keep].cpu().numpy(),
        scores=scores[keep].cpu().numpy(),
        labels=labels[keep].cpu().numpy(),
        label_names=[names[i] for i in labels[keep].tolist()],
        query_index=keep.cpu().numpy(),
        layer_probs=probs.float().cpu().numpy(),
        layer_boxes=layer_boxes.cpu().numpy(),
        encoder=stack(att.encoder, (nh, h, w, h, w)),
        decoder_self=stack(att.decoder_self, (nh, n, n)),
        decoder_cross=stack(att.decoder_cross, (nh, n, h, w)),
        class_names=list(names),
    )
