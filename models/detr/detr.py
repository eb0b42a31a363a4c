"""The DETR detector (Carion et al., 2020): backbone, transformer, and the two prediction heads.

`DETR(...)` takes plain keyword arguments; `DetrConfig` carries them (and the class names and the
pre-processing sizes) for checkpoints, and `build_detr(config)` is the factory. `DETR.forward`
returns a `DetrOutput`; with `capture=True` it also holds every attention, per layer and per head.

Official state-dict names are kept: `backbone.0.body.*`, `input_proj`, `query_embed`,
`transformer.*`, `class_embed`, `bbox_embed.layers.{0,1,2}`.
"""

from dataclasses import asdict, dataclass, field

from torch import Tensor, nn
from torch.nn import functional as F

from models.attention import ZERO, AttentionRecord
from models.detr.backbone import Backbone, FrozenBatchNorm2d, Joiner, NormLayer
from models.detr.position_encoding import PositionEmbeddingSine
from models.detr.transformer import Transformer


@dataclass
class DetrConfig:
    """Everything needed to rebuild a DETR and feed it images. Defaults are the official DETR-R50."""

    num_classes: int = 91  # class ids 0..num_classes-1; the head has one more output, "no object"
    backbone_depth: int = 50  # ResNet depth: 18, 34 (basic blocks), 50, 101 (bottlenecks)
    backbone_width: int = 64  # channels of the ResNet stem (64 for the torchvision ResNets)
    dilation: bool = False  # DC5: last stage dilated, feature stride 16 instead of 32
    d_model: int = 256  # transformer width (hidden_dim)
    n_heads: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    num_queries: int = 100  # object queries N = the most objects one image can yield
    min_size: int = 800  # eval pre-processing: shorter side resized to this ...
    max_size: int = 1333  # ... unless the longer side would pass this
    class_names: list[str] = field(default_factory=list)  # names of ids 0..num_classes-1 ("N/A" gaps)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DetrConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown DETR config fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class DetrAttentions:
    """Every attention of one forward pass, one `AttentionRecord` per layer, heads kept apart.

    B images, nh heads, N queries, HW = h * w feature positions in row-major order, so that
    `probs.reshape(B, nh, h, w, h, w)` (encoder) or `(B, nh, N, h, w)` (cross) recovers the map.
    """

    encoder: list[AttentionRecord]  # probs (B, nh, HW, HW)
    decoder_self: list[AttentionRecord]  # probs (B, nh, N, N)
    decoder_cross: list[AttentionRecord]  # probs (B, nh, N, HW); padded positions get exactly 0


@dataclass
class DetrOutput:
    """DETR's predictions. K = num_classes; the last of the K + 1 logits is "no object"."""

    pred_logits: Tensor  # (B, N, K + 1) last decoder layer
    pred_boxes: Tensor  # (B, N, 4) last layer, (cx, cy, w, h) in [0, 1] of the unpadded image
    aux_logits: Tensor  # (L_dec, B, N, K + 1) every decoder layer, the last equal to pred_logits
    aux_boxes: Tensor  # (L_dec, B, N, 4)
    feature_mask: Tensor  # (B, h, w) True where the feature map covers padding
    h: int  # feature-map height = ceil(padded image height / stride)
    w: int  # feature-map width
    attentions: DetrAttentions | None  # only with capture=True


class MLP(nn.Module):
    """Plain multi-layer perceptron (the box head), ReLU between layers."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class DETR(nn.Module):
    def __init__(self, backbone: Joiner, transformer: Transformer, num_classes: int, num_queries: int):
        super().__init__()
        d = transformer.d_model
        self.backbone = backbone
        self.transformer = transformer
        self.num_queries = num_queries
        self.class_embed = nn.Linear(d, num_classes + 1)
        self.bbox_embed = MLP(d, d, 4, 3)
        self.query_embed = nn.Embedding(num_queries, d)
        self.input_proj = nn.Conv2d(backbone.num_channels, d, kernel_size=1)

    def forward(
        self, images: Tensor, mask: Tensor, capture: bool = False, head_gates: dict | None = None,
        gate_fill: str = ZERO,
    ) -> DetrOutput:  # fmt: skip
        """images (B, 3, H, W) normalised; mask (B, H, W) True at padding (see `preprocess.py`);
        head_gates as in `Transformer.forward`."""
        feat, feat_mask, pos = self.backbone(images, mask)  # (B, C, h, w), (B, h, w), (B, d, h, w)
        return self.predict(self.input_proj(feat), feat_mask, pos, capture, head_gates, gate_fill)

    def predict(
        self, src: Tensor, feat_mask: Tensor, pos: Tensor, capture: bool = False,
        head_gates: dict | None = None, gate_fill: str = ZERO,
    ) -> DetrOutput:  # fmt: skip
        """The transformer and the heads on projected features src (B, d, h, w), with feat_mask (B, h, w)
        and pos (B, d, h, w) from the backbone: what the explanations rerun without the backbone."""
        out = self.transformer(
            src, feat_mask, self.query_embed.weight, pos, capture=capture, head_gates=head_gates,
            gate_fill=gate_fill,
        )  # fmt: skip
        logits = self.class_embed(out.hs)  # (L, B, N, K + 1)
        boxes = self.bbox_embed(out.hs).sigmoid()  # (L, B, N, 4)
        attentions = None
        if capture:
            attentions = DetrAttentions(
                encoder=out.encoder_attentions,
                decoder_self=out.decoder_self_attentions,
                decoder_cross=out.decoder_cross_attentions,
            )
        return DetrOutput(
            pred_logits=logits[-1],
            pred_boxes=boxes[-1],
            aux_logits=logits,
            aux_boxes=boxes,
            feature_mask=feat_mask,
            h=src.shape[-2],
            w=src.shape[-1],
            attentions=attentions,
        )


def build_detr(config: DetrConfig, norm: NormLayer = FrozenBatchNorm2d) -> DETR:
    """The model a config describes. `norm` is for training from scratch (nn.BatchNorm2d); a
    BatchNorm2d state dict loads into the default frozen model unchanged."""
    backbone = Backbone(config.backbone_depth, config.backbone_width, config.dilation, norm)
    joiner = Joiner(backbone, PositionEmbeddingSine(config.d_model // 2, normalize=True))
    transformer = Transformer(
        d_model=config.d_model,
        n_heads=config.n_heads,
        num_encoder_layers=config.num_encoder_layers,
        num_decoder_layers=config.num_decoder_layers,
        dim_feedforward=config.dim_feedforward,
        dropout=config.dropout,
    )
    return DETR(joiner, transformer, num_classes=config.num_classes, num_queries=config.num_queries)
