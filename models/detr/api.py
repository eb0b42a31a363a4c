"""The DETR API the app uses: load a detector, run it on one image, get plain numpy results.

    from models.detr.api import load_detr, run_detr
    detector = load_detr()                     # our shapes detector from weights/detr-shapes
    detector = load_detr("detr-r50-e632da11.pth")   # or an official / Hugging Face checkpoint
    result = run_detr(detector, pil_image, threshold=0.7)
    result.boxes, result.scores, result.label_names  # the detections, best first, no NMS (S17)
    result.decoder_cross[-1, :, q]           # (nh, h, w) where query q looked in the last layer
    inspect.encoder_maps(result, y, x)       # (E, nh, h, w) where feature cell (y, x) looks, on demand

`load_detr(path=None, device="cpu") -> Detector` raises `CheckpointError` (a `ModelLoadError` and a
ValueError) with a clear message for anything it cannot load. `run_detr` pre-processes as the official
evaluation (shorter side `config.min_size`, longer <= `config.max_size`, ImageNet normalisation), runs one
forward pass on the fused kernel with q, k and v recorded (`capture=LAZY`), and returns a `DetrResult`:
numpy arrays for the predictions and the decoder's (small) attention, and the encoder's self-attention as
a `Family` whose maps are computed when a view asks (DETR-R50 at 800 x 1066 has 850 positions: every
encoder map at once would be 6 x 8 x 850 x 850 floats, 140 MB). Its docstring lists the shapes.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.attention import LAZY
from models.detr.box_ops import box_cxcywh_to_xyxy
from models.detr.checkpoint import CheckpointError, load_checkpoint
from models.detr.detr import DETR, DetrConfig
from models.detr.preprocess import preprocess
from models.detr.scenes import SHAPE_CLASSES
from models.readout import Family, readout

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
    (h, w) the feature map, HW = h * w positions in row-major order. Boxes are xyxy in pixels of the
    original image. Shared between sessions: nothing may mutate it."""

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
    encoder_attention: Family  # encoder self-attention: q, k, v (E, nh, HW, dh); maps on demand
    encoder_logsumexp: torch.Tensor  # (E, nh, HW) log Σ_k exp(score) of each encoder query's row
    decoder_self: np.ndarray  # (L, nh, N, N) decoder self-attention between queries
    decoder_cross: np.ndarray  # (L, nh, N, h, w) where each query looks in the feature map
    class_names: list[str]  # names of ids 0..K-1

    @property
    def encoder(self) -> np.ndarray:
        """(E, nh, h, w, h, w) every encoder map [layer, head, qy, qx, ky, kx], computed now from q and k.
        E · nh · HW² floats (140 MB for DETR-R50 at 800 x 1066): for downloads and small inputs; a view
        asks `inspect.encoder_maps` for one position instead."""
        family = self.encoder_attention
        maps = [family.weights(layer, slice(None)).float().cpu().numpy() for layer in range(family.n_layers)]
        return np.stack(maps).reshape(family.n_layers, family.n_heads, self.h, self.w, self.h, self.w)

    @property
    def nbytes(self) -> int:
        """What this result holds (for `ui.results`' byte bound)."""
        arrays = (self.boxes, self.scores, self.labels, self.query_index, self.layer_probs, self.layer_boxes,
                  self.decoder_self, self.decoder_cross)  # fmt: skip
        lse = self.encoder_logsumexp
        return (
            sum(a.nbytes for a in arrays) + self.encoder_attention.nbytes + lse.element_size() * lse.numel()
        )


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
    out = model(batch.pixels.to(device), batch.mask.to(device), capture=LAZY)
    (H, W), (hin, win) = batch.orig_sizes[0], batch.sizes[0]
    h, w = out.h, out.w
    probs = out.aux_logits[:, 0].softmax(-1)  # (L, N, K + 1)
    scale = torch.tensor([W, H, W, H], dtype=torch.float32, device=device)
    layer_boxes = box_cxcywh_to_xyxy(out.aux_boxes[:, 0].float()) * scale  # (L, N, 4)
    scores, labels = probs[-1, :, :-1].max(-1)  # (N,)
    keep = torch.nonzero(scores >= threshold).flatten()
    keep = keep[scores[keep].argsort(descending=True)]
    att = out.attentions
    families = readout(encoder=att.encoder, decoder_self=att.decoder_self, cross=att.decoder_cross)
    names = config.class_names or [f"class {i}" for i in range(config.num_classes)]
    n = probs.shape[1]
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
        encoder_attention=families["encoder"],
        encoder_logsumexp=_row_logsumexp(families["encoder"]),
        decoder_self=_all_maps(families["decoder_self"]),  # (L, nh, N, N)
        decoder_cross=_all_maps(families["cross"]).reshape(-1, families["cross"].n_heads, n, h, w),
        class_names=list(names),
    )


def _all_maps(family: Family) -> np.ndarray:
    """(L, nh, Tq, Tk) every map of a small family (the decoder's: N queries), computed from q and k."""
    return np.stack(
        [family.weights(layer, slice(None)).float().cpu().numpy() for layer in range(family.n_layers)]
    )


def _row_logsumexp(family: Family) -> torch.Tensor:
    """(L, nh, Tq) the softmax normaliser of every row, one layer at a time: with it, a column of a map
    (who attends to a position) is one product of q with that position's k."""
    return torch.stack([family.scores(layer, slice(None)).logsumexp(-1) for layer in range(family.n_layers)])
