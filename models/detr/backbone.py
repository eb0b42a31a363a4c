"""DETR's backbone: a ResNet with frozen batch norm, whose stride-32 (or 16, "DC5") map feeds the transformer.

Module names follow the official repository (`backbone.0.body.conv1`, `...layer4.2.bn3`), so that the
torch-hub checkpoints load without renaming. `Joiner` pairs the ResNet with the positional encoding
exactly like the official `Joiner`, which is why the ResNet sits at index 0 of `DETR.backbone`.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models.detr.position_encoding import PositionEmbeddingSine

# depth -> (block kind, blocks per stage)
RESNET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters, all four stored as buffers.

    Same as the official one: `num_batches_tracked` in a state dict is ignored, eps is 1e-5, and an
    `nn.BatchNorm2d` state dict loads into it (which is how our trained backbone is frozen for export).
    """

    def __init__(self, n: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(n))
        self.register_buffer("bias", torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return torch.addcmul(bias[None, :, None, None], x, scale[None, :, None, None])  # x * scale + bias


NormLayer = Callable[[int], nn.Module]


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, cin: int, width: int, stride: int, dilation: int, downsample: nn.Module | None, norm: NormLayer
    ):
        super().__init__()
        self.conv1 = conv3x3(cin, width, stride, dilation)
        self.bn1 = norm(width)
        self.conv2 = conv3x3(width, width, 1, dilation)
        self.bn2 = norm(width)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out += identity  # in place, as torchvision: the backbone is most of DETR's time on a CPU
        return F.relu(out, inplace=True)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, cin: int, width: int, stride: int, dilation: int, downsample: nn.Module | None, norm: NormLayer
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = norm(width)
        self.conv2 = conv3x3(width, width, stride, dilation)  # stride on the 3x3, as torchvision v1.5
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = norm(width * 4)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        out += identity  # in place, as torchvision
        return F.relu(out, inplace=True)


class ResNet(nn.Module):
    """torchvision's ResNet layout without the classifier; `forward` returns the last stage's map."""

    def __init__(
        self,
        depth: int = 50,
        base_width: int = 64,
        dilation: bool = False,
        norm: NormLayer = FrozenBatchNorm2d,
    ):
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"ResNet depth {depth} is not one of {sorted(RESNET_LAYOUTS)}")
        kind, counts = RESNET_LAYOUTS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(3, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(base_width)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin, cur_dilation = base_width, 1
        for i, n_blocks in enumerate(counts):
            width = base_width * 2**i
            stride = 1 if i == 0 else 2
            prev_dilation = cur_dilation
            if i == 3 and dilation:  # DC5: the last stage keeps stride 16 and dilates instead
                cur_dilation, stride = cur_dilation * stride, 1
            downsample = None
            if stride != 1 or cin != width * block.expansion:
                cout = width * block.expansion
                downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), norm(cout))
            blocks = [block(cin, width, stride, prev_dilation, downsample, norm)]
            cin = width * block.expansion
            blocks += [block(cin, width, 1, cur_dilation, None, norm) for _ in range(n_blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_channels = cin

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x)), inplace=True))  # (B, C, H/4, W/4)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, C', H/32, W/32)


class Backbone(nn.Module):
    """The ResNet under `.body`, plus the padding mask brought down to the feature map's size."""

    def __init__(
        self,
        depth: int = 50,
        base_width: int = 64,
        dilation: bool = False,
        norm: NormLayer = FrozenBatchNorm2d,
    ):
        super().__init__()
        self.body = ResNet(depth, base_width, dilation, norm)
        self.num_channels = self.body.num_channels
        self.stride = 16 if dilation else 32

    def freeze_stem(self) -> None:
        """As the official training: conv1, bn1 and layer1 get no gradient."""
        for name, p in self.body.named_parameters():
            if not name.startswith(("layer2", "layer3", "layer4")):
                p.requires_grad_(False)

    def forward(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """images (B, 3, H, W), mask (B, H, W) True at padding -> (B, C, h, w) features, (B, h, w) mask."""
        feat = self.body(images)
        mask = F.interpolate(mask[None].float(), size=feat.shape[-2:]).to(torch.bool)[0]  # nearest
        return feat, mask


class Joiner(nn.Sequential):
    """(backbone, position encoding) like the official Joiner: features, mask and encoding of the map."""

    def __init__(self, backbone: Backbone, position_embedding: PositionEmbeddingSine):
        super().__init__(backbone, position_embedding)
        self.num_channels = backbone.num_channels

    def forward(self, images: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """-> features (B, C, h, w), mask (B, h, w), pos (B, d_model, h, w)."""
        feat, feat_mask = self[0](images, mask)
        return feat, feat_mask, self[1](feat_mask).to(feat.dtype)
