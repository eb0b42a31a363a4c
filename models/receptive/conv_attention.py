"""A convolution is a special self-attention (Cordonnier, Loukas and Jaggi, ICLR 2020).

Multi-head self-attention over the pixels of an image, with K² heads and a quadratic
relative-position encoding, reproduces a K×K convolution. Head h owns one kernel offset Δ_h; its
score between query pixel q and key pixel p is

    -α ||(p - q) - Δ_h||²  =  -α ||p||² + 2α p·(q + Δ_h) + (a constant per query),

so as the sharpness α grows its softmax concentrates on the single pixel p = q + Δ_h. The value of
every head is the input itself and the output projection of head h is the kernel slice W[:, :, Δ_h],
so the sum over heads is the convolution. The per-query constant does not change a softmax, which
leaves a dot product of a query (-α, 2α(q + Δ_h)) with a key (||p||², p): it runs through the
project's `attend` like any other attention. The input is zero-padded by K // 2 so that every offset
has a key, as the zero padding of the convolution has.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.attention import AttentionRecord, attend
from models.receptive.threads import one_cpu_thread


def kernel_offsets(kernel_size: int) -> Tensor:
    """(K², 2) offsets (dy, dx) of the kernel taps in the order of weight[:, :, i, j], row-major."""
    half = kernel_size // 2
    grid = torch.arange(kernel_size) - half
    dy, dx = torch.meshgrid(grid, grid, indexing="ij")
    return torch.stack([dy.flatten(), dx.flatten()], dim=-1)


def _grid(h: int, w: int, shift: int = 0) -> Tensor:
    """(h*w, 2) pixel coordinates (y, x), row-major, minus shift."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([ys.flatten(), xs.flatten()], dim=-1) - shift


def conv_as_attention(
    x: Tensor, weight: Tensor, bias: Tensor | None, alpha: float, capture: bool = False
) -> tuple[Tensor, AttentionRecord | None]:
    """The convolution F.conv2d(x, weight, bias, padding=K // 2) as K²-head self-attention.

    x (B, C, H, W), weight (D, C, K, K) with K odd, bias (D,) or None. Returns the output
    (B, D, H, W) and, with capture, the record whose probs are (B, K², H*W, (H+K-1)*(W+K-1)).
    """
    d_out, c_in, k, k2 = weight.shape
    if k != k2 or k % 2 == 0:
        raise ValueError(f"the construction needs a square kernel of odd size, got {k}x{k2}")
    if x.size(1) != c_in:
        raise ValueError(f"input has {x.size(1)} channels, the kernel expects {c_in}")
    b, _, h, w = x.shape
    half = k // 2
    padded = F.pad(x, (half, half, half, half))  # (B, C, Hp, Wp)
    keys_at = _grid(h + 2 * half, w + 2 * half, shift=half).to(x)  # (Nk, 2) in the unpadded frame
    queries_at = _grid(h, w).to(x)  # (Nq, 2)
    offsets = kernel_offsets(k).to(x)  # (nh, 2), nh = K²
    n_heads = offsets.size(0)

    key = torch.cat([(keys_at**2).sum(-1, keepdim=True), keys_at], dim=-1)  # (Nk, 3): (||p||², p)
    target = queries_at[None] + offsets[:, None]  # (nh, Nq, 2): q + Δ_h
    query = torch.cat([torch.full_like(target[..., :1], -alpha), 2 * alpha * target], dim=-1)  # (nh, Nq, 3)
    query = query * math.sqrt(3)  # undo attend's 1/sqrt(d_head) with d_head = 3
    value = padded.flatten(2).transpose(1, 2)  # (B, Nk, C): every head reads the input itself

    q = query[None].expand(b, -1, -1, -1)  # (B, nh, Nq, 3)
    kk = key[None, None].expand(b, n_heads, -1, -1)  # (B, nh, Nk, 3)
    v = value[:, None].expand(-1, n_heads, -1, -1)  # (B, nh, Nk, C)
    heads, record = attend(q, kk, v, capture=capture)  # (B, nh, Nq, C)
    projection = weight.permute(2, 3, 1, 0).reshape(n_heads, c_in, d_out)  # (nh, C, D): W[:, :, Δ_h]^T
    out = torch.einsum("bhnc,hcd->bnd", heads, projection)  # (B, Nq, D)
    if bias is not None:
        out = out + bias
    return out.transpose(1, 2).reshape(b, d_out, h, w), record


def construction_error(x: Tensor, weight: Tensor, bias: Tensor | None, alpha: float) -> float:
    """max |attention - convolution| / max |convolution| on x."""
    reference = F.conv2d(x, weight, bias, padding=weight.size(-1) // 2)
    approx, _ = conv_as_attention(x, weight, bias, alpha)
    return float((approx - reference).abs().max() / reference.abs().max())


@one_cpu_thread
def error_vs_alpha(
    kernel_size: int = 3, size: int = 12, channels: int = 3, alphas=None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, errors): the construction error on a random image and kernel, in float64."""
    alphas = np.logspace(-1, 1.7, 28) if alphas is None else np.asarray(alphas, dtype=float)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, channels, size, size, generator=gen, dtype=torch.float64)
    weight = torch.randn(channels, channels, kernel_size, kernel_size, generator=gen, dtype=torch.float64)
    bias = torch.randn(channels, generator=gen, dtype=torch.float64)
    return alphas, np.array([construction_error(x, weight, bias, a) for a in alphas])


def head_maps(kernel_size: int, alpha: float, size: int = 9) -> np.ndarray:
    """(K², K+2, K+2) each head's attention around the centre pixel of a size×size image."""
    x = torch.zeros(1, 1, size, size, dtype=torch.float64)
    weight = torch.zeros(1, 1, kernel_size, kernel_size, dtype=torch.float64)
    _, record = conv_as_attention(x, weight, None, alpha, capture=True)
    half = kernel_size // 2
    padded = size + 2 * half
    centre = (size // 2) * size + size // 2
    probs = record.probs[0, :, centre].reshape(-1, padded, padded)  # (nh, Hp, Wp)
    c = size // 2 + half  # centre pixel in the padded frame
    return probs[:, c - half - 1 : c + half + 2, c - half - 1 : c + half + 2].numpy()
