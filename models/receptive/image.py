"""Receptive fields on images: a 2-D CNN's effective field, and how far self-attention looks.

The CNN's effective receptive field is the gradient map |dy_c/dx| of its centre output over the
input image, averaged over random initialisations (Luo et al., 2016). The span of a self-attention
is its mean attention distance: the distance between a query position and the keys, weighted by the
attention, averaged over queries (Dosovitskiy et al., 2021, figure 7), in the same pixels.
"""

import numpy as np
import torch
from torch import Tensor, nn

from models.detr.api import Detector, run_detr
from models.receptive.threads import one_cpu_thread

MAX_IMAGE_SIDE = 128  # the gradient maps run a full backward pass per initialisation and depth
MAX_DEPTH_2D = 32
MAX_KERNEL_2D = 15  # as the 1-D CNN; the work budget below lowers it for large images and deep stacks
# side² x K² x depth x channels² x initialisations, summed over the depths asked: one unit took 0.6 to
# 0.8 ns of forward and backward on one CPU thread (128 pixels, K = 5 to 15), so this is about 6 s alone
# and stays under the 30 s a page run may take on a shared two-core machine with the page's other work
MAX_GRADIENT_WORK = 8e9
CHANNELS, N_INITS = 8, 4  # the gradient maps' CNN width and random initialisations


def gradient_work(side: int, kernel_size: int, depths: list[int]) -> float:
    """The gradient maps' work for a side x side image, one K x K stack per depth (see MAX_GRADIENT_WORK)."""
    return float(side) ** 2 * kernel_size**2 * sum(depths) * CHANNELS**2 * N_INITS


def largest_kernel(side: int, depths: list[int]) -> int:
    """The largest odd kernel size up to MAX_KERNEL_2D whose gradient maps fit MAX_GRADIENT_WORK (1 when
    none does): the kernel widget's maximum, derived from the cost."""
    fitting = [
        k for k in range(1, MAX_KERNEL_2D + 1, 2) if gradient_work(side, k, depths) <= MAX_GRADIENT_WORK
    ]
    return fitting[-1] if fitting else 1


class ConvStack2d(nn.Module):
    """K×K convolutions with zero padding ("same" size), each followed by tanh."""

    def __init__(self, in_channels: int, channels: int, n_layers: int, kernel_size: int):
        super().__init__()
        widths = [in_channels] + [channels] * n_layers
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2)
            for cin, cout in zip(widths, widths[1:])
        )

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = torch.tanh(conv(x))
        return x  # (B, channels, H, W)


def check_image(image: np.ndarray, depths: list[int], kernel_size: int) -> None:
    """Raise ValueError naming the limit that the image or the depths break."""
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {image.shape}")
    if max(image.shape[1:]) > MAX_IMAGE_SIDE:
        raise ValueError(
            f"image side {max(image.shape[1:])} exceeds the limit {MAX_IMAGE_SIDE}; downscale it"
        )
    if not depths or min(depths) < 1 or max(depths) > MAX_DEPTH_2D:
        raise ValueError(f"CNN depths {depths} must lie in [1, {MAX_DEPTH_2D}]")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel size {kernel_size} must be odd, so that the centre output stays centred")
    if kernel_size > MAX_KERNEL_2D:
        raise ValueError(f"kernel size {kernel_size} exceeds the limit {MAX_KERNEL_2D}; choose a smaller one")
    work = gradient_work(max(image.shape[1:]), kernel_size, depths)
    if work > MAX_GRADIENT_WORK:
        raise ValueError(
            f"kernel size {kernel_size} at depths {depths} on a {max(image.shape[1:])}-pixel image is "
            f"{work:.2g} units of work, over the limit {MAX_GRADIENT_WORK:.2g} (about 6 s); the largest "
            f"kernel that fits is {largest_kernel(max(image.shape[1:]), depths)}, or drop the deepest depths"
        )


@one_cpu_thread
def cnn_field_2d(
    image: np.ndarray,
    depths: list[int],
    kernel_size: int = 3,
    channels: int = 8,
    n_inits: int = 4,
    seed: int = 0,
    progress=None,
) -> np.ndarray:
    """(len(depths), H, W) mean |dy_centre/dx| summed over input channels, for a CNN of each depth.

    image (C, H, W) float. The output gradient is 1 on every channel of the centre pixel.
    """
    check_image(image, depths, kernel_size)
    c, h, w = image.shape
    x = torch.as_tensor(image, dtype=torch.float32)[None]  # (1, C, H, W)
    maps = np.zeros((len(depths), h, w))
    for i, depth in enumerate(depths):
        for j in range(n_inits):
            torch.manual_seed(seed + j)
            model = ConvStack2d(c, channels, depth, kernel_size)
            xg = x.clone().requires_grad_(True)
            model(xg)[0, :, h // 2, w // 2].sum().backward()
            maps[i] += xg.grad[0].abs().sum(0).numpy() / n_inits
        if progress:
            progress((i + 1) / len(depths))
    return maps


def field_distance_2d(gradient_map: np.ndarray) -> float:
    """Mean distance in pixels from the centre under the map normalised to a distribution.

    The same measure as the mean attention distance, so that the two can share an axis.
    """
    h, w = gradient_map.shape
    ys, xs = np.mgrid[0:h, 0:w]
    dist = np.hypot(ys - h // 2, xs - w // 2)
    return float((gradient_map * dist).sum() / gradient_map.sum())


def theoretical_radius_2d(depth: int, kernel_size: int) -> int:
    """Half the side of the square a depth-layer K×K stack sees: depth * (K - 1) / 2 pixels."""
    return depth * (kernel_size // 2)


def mean_attention_distance(
    probs: np.ndarray, coords: np.ndarray, query_mask: np.ndarray | None = None
) -> np.ndarray:
    """Mean attention distance per leading index: probs (..., N, N) rows summing to 1, coords (N, 2).

    For each query i, sum_j probs[i, j] * |coords_i - coords_j|, averaged over the queries (those
    where query_mask is True, if given). Returns probs.shape[:-2].
    """
    probs = np.asarray(probs, dtype=float)
    coords = np.asarray(coords, dtype=float)
    n = coords.shape[0]
    if probs.shape[-2:] != (n, n) or coords.shape != (n, 2):
        raise ValueError(
            f"probs (..., {n}, {n}) and coords ({n}, 2) disagree: got {probs.shape}, {coords.shape}"
        )
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=-1)  # (N, N)
    per_query = (probs * dist).sum(-1)  # (..., N)
    if query_mask is None:
        return per_query.mean(-1)
    return per_query[..., np.asarray(query_mask, dtype=bool)].mean(-1)


def encoder_span(
    encoder: np.ndarray, stride: int, scale: float, valid: tuple[int, int] | None = None
) -> np.ndarray:
    """(E, nh) mean attention distance of a DETR encoder, in pixels of the original image.

    encoder (E, nh, h, w, h, w) self-attention probabilities [layer, head, qy, qx, ky, kx]; a feature
    cell is `stride` pixels of the resized input, and `scale` original pixels per input pixel. Only
    queries on cells that cover the image (valid = (h', w') cells, the rest is padding) are averaged.
    """
    n_layers, n_heads, h, w = encoder.shape[:4]
    if encoder.shape[4:] != (h, w):
        raise ValueError(f"encoder attention must be (E, nh, h, w, h, w), got {encoder.shape}")
    ys, xs = np.mgrid[0:h, 0:w]
    coords = np.stack([ys.ravel(), xs.ravel()], axis=-1) * stride * scale  # (h*w, 2) cell corners, pixels
    inside = None
    if valid is not None:
        inside = ((ys < valid[0]) & (xs < valid[1])).ravel()
    probs = encoder.reshape(n_layers, n_heads, h * w, h * w)
    return mean_attention_distance(probs, coords, inside)


def uniform_span(h: int, w: int, stride: int, scale: float, valid: tuple[int, int]) -> float:
    """The mean attention distance of a head that attends uniformly to every cell covering the image:
    the span of attention that looks everywhere at once, for reference."""
    probs = np.zeros((1, 1, h, w, h, w))
    probs[..., : valid[0], : valid[1]] = 1.0 / (valid[0] * valid[1])
    return float(encoder_span(probs, stride, scale, valid)[0, 0])


@one_cpu_thread
def detr_encoder_span(detector: Detector, image: np.ndarray) -> tuple[np.ndarray, float]:
    """Run DETR on image (H, W, 3) uint8 and measure its encoder.

    Returns the (E, nh) mean attention distance of every encoder head in pixels of the image, and
    the distance of attention spread evenly over the image, for reference.
    """
    result = run_detr(detector, image)
    scale = result.image_size[0] / result.input_size[0]  # image pixels per input pixel
    cells = tuple(-(-n // result.stride) for n in result.input_size)  # feature cells that cover the image
    spans = encoder_span(result.encoder, result.stride, scale, cells)
    return spans, uniform_span(result.h, result.w, result.stride, scale, cells)
