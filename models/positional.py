"""Positional encodings, computed so that a page can show them and a test can check them.

- Sinusoidal ("Attention Is All You Need"): PE[pos, 2i] = sin(pos / base^(2i/d)), PE[pos, 2i+1] = cos(...).
- Learned: a table W (N, d) looked up by position, which is the same as one-hot(N) @ W (S6).
- DETR's 2-D sine encoding of a feature map (S20), through `models.detr.position_encoding`.
- Rotary (RoPE, RoFormer): channel pair (2i, 2i+1) of a query or key at position m is rotated by
  m·θ_i, θ_i = base^(-2i/d), so that q·k depends on the positions only through their offset.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from models.detr.position_encoding import PositionEmbeddingSine
from models.detr.preprocess import resized_size

MAX_POSITIONS = 8192
MAX_DIM = 4096
MAX_IMAGE_SIDE = 10_000
DETR_STRIDE = 32  # ResNet C5: every stride-2 stage rounds up, so a side of s pixels gives ceil(s / 32)
DETR_SHORTER_SIDE = 800
DETR_LONGER_MAX = 1333


def check_size(n_positions: int, d: int) -> None:
    """Raise ValueError naming the limit when N or d cannot be encoded (d must be even: sin/cos pairs)."""
    if not 1 <= n_positions <= MAX_POSITIONS:
        raise ValueError(
            f"N = {n_positions} positions is outside 1..{MAX_POSITIONS}; choose N ≤ {MAX_POSITIONS}"
        )
    if not 2 <= d <= MAX_DIM:
        raise ValueError(f"d = {d} channels is outside 2..{MAX_DIM}; choose d ≤ {MAX_DIM}")
    if d % 2:
        raise ValueError(f"d = {d} is odd; the channels come in (sin, cos) pairs, so choose an even d")


def inverse_frequencies(d: int, base: float = 10000.0) -> Tensor:
    """(d/2,) ω_i = base^(-2i/d): the angular speed of channel pair i, fastest first."""
    return base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)


def sinusoidal(n_positions: int, d: int, base: float = 10000.0, positions: Tensor | None = None) -> Tensor:
    """(T, d) float32 sinusoidal encoding of `positions` (default 0..N-1), even channels sin, odd cos.

    Computed in float64 so that large positions keep their phase, then cast.
    """
    check_size(n_positions, d)
    pos = torch.arange(n_positions, dtype=torch.float64) if positions is None else positions.double()
    angles = pos[:, None] * inverse_frequencies(d, base)[None, :]  # (T, d/2)
    pe = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(1)  # (T, d/2, 2) -> (T, d) interleaved
    return pe.float()


def position_similarity(pe: Tensor, normalize: bool = False) -> Tensor:
    """(N, N) dot products between the encodings of every pair of positions (cosines if `normalize`)."""
    if pe.dim() != 2:
        raise ValueError(f"expected an (N, d) encoding, got shape {tuple(pe.shape)}")
    if normalize:
        pe = F.normalize(pe, dim=-1)
    return pe @ pe.T


def one_hot_positions(positions: Tensor, n_positions: int) -> Tensor:
    """(T,) position indices -> (T, N) float one-hot rows: the seed's length-N one-hot vectors (S6)."""
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= n_positions):
        raise ValueError(
            f"positions must lie in 0..{n_positions - 1}, got {positions.min()}..{positions.max()}"
        )
    return F.one_hot(positions.long(), n_positions).float()


def learned_by_lookup(table: Tensor, positions: Tensor) -> Tensor:
    """(T, d) rows of the learned (N, d) table, as an embedding layer reads them."""
    return F.embedding(positions.long(), table)


def learned_by_one_hot(table: Tensor, positions: Tensor) -> Tensor:
    """(T, d) the same rows as a matrix product, one-hot (T, N) @ table (N, d): W (d×N) · one-hot (S6)."""
    return one_hot_positions(positions, table.shape[0]).to(table.dtype) @ table


def rope_angles(positions: Tensor, d: int, base: float = 10000.0) -> Tensor:
    """(T, d/2) the angle m·θ_i by which channel pair i is rotated at position m."""
    check_size(1, d)
    return positions.double()[:, None] * inverse_frequencies(d, base)[None, :]


def apply_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """(..., T, d) queries or keys -> the same with pair (2i, 2i+1) at position m rotated by m·θ_i."""
    d = x.shape[-1]
    angles = rope_angles(positions, d, base)  # (T, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]  # (..., T, d/2) each
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def rope_scores(q: Tensor, k: Tensor, n_positions: int, base: float = 10000.0) -> Tensor:
    """(N, N) S[m, n] = rope(q, m) · rope(k, n): the same query and key vectors placed at every position."""
    if q.shape != k.shape or q.dim() != 1:
        raise ValueError(f"q and k must be two (d,) vectors, got {tuple(q.shape)} and {tuple(k.shape)}")
    check_size(n_positions, q.shape[0])
    positions = torch.arange(n_positions)
    qs = apply_rope(q.expand(n_positions, -1), positions, base)  # (N, d)
    ks = apply_rope(k.expand(n_positions, -1), positions, base)
    return qs @ ks.T


def scores_by_offset(scores: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """For an (N, N) score matrix: offsets n - m (2N-1,), the mean score and the spread (max - min) along
    each diagonal. A spread of zero (to rounding) means the score depends only on the relative offset."""
    n = scores.shape[0]
    offsets = torch.arange(-(n - 1), n)
    diagonals = [scores.diagonal(int(o)) for o in offsets]
    means = torch.stack([d.mean() for d in diagonals])
    spreads = torch.stack([d.max() - d.min() for d in diagonals])
    return offsets, means, spreads


def detr_resized_size(
    height: int, width: int, shorter: int = DETR_SHORTER_SIDE, longer_max: int = DETR_LONGER_MAX
) -> tuple[int, int]:
    """(h, w) of an image after DETR's resize: shorter side to `shorter` unless the longer would pass
    `longer_max` (then the longer side is capped), as the official `get_size_with_aspect_ratio`."""
    if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
        raise ValueError(f"image size {height}×{width} is outside 1..{MAX_IMAGE_SIDE} pixels per side")
    h, w = resized_size(height, width, shorter, longer_max)
    return max(1, h), max(1, w)


def detr_feature_size(height: int, width: int) -> tuple[int, int]:
    """(H, W) of DETR's backbone feature map (stride 32) for an image of height × width pixels."""
    h, w = detr_resized_size(height, width)
    return math.ceil(h / DETR_STRIDE), math.ceil(w / DETR_STRIDE)


def detr_feature_mask(image_hw: tuple[int, int], padded_hw: tuple[int, int]) -> Tensor:
    """(H, W) bool padding mask of the feature map of a resized image padded (bottom/right) to `padded_hw`
    in a batch, True at padding, downsampled by nearest interpolation as DETR's backbone does."""
    (h, w), (ph, pw) = image_hw, padded_hw
    if ph < h or pw < w:
        raise ValueError(f"the padded size {ph}×{pw} must contain the image {h}×{w}")
    pixels = torch.ones(1, 1, ph, pw)
    pixels[..., :h, :w] = 0
    feat_hw = (math.ceil(ph / DETR_STRIDE), math.ceil(pw / DETR_STRIDE))
    return F.interpolate(pixels, size=feat_hw)[0, 0].bool()


def detr_sine(mask: Tensor, num_pos_feats: int = 128) -> Tensor:
    """(H, W) bool padding mask -> (2·num_pos_feats, H, W) DETR sine encoding: y channels, then x (S20)."""
    if mask.dim() != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {tuple(mask.shape)}")
    if bool(mask.all()):
        raise ValueError("the mask covers every position; at least one must be image, not padding")
    return PositionEmbeddingSine(num_pos_feats, normalize=True)(mask[None])[0]


def detr_channel_name(channel: int, num_pos_feats: int = 128) -> str:
    """What channel c of the DETR encoding holds, e.g. "y sin, pair 3" (pair 0 is the fastest)."""
    if not 0 <= channel < 2 * num_pos_feats:
        raise ValueError(f"channel {channel} is outside 0..{2 * num_pos_feats - 1}")
    axis, j = divmod(channel, num_pos_feats)
    return f"{'yx'[axis]} {'cos' if j % 2 else 'sin'}, pair {j // 2}"


def similarity_to_point(pos: Tensor, y: int, x: int) -> Tensor:
    """(C, H, W) encoding -> (H, W) cosine similarity of every position's encoding with that at (y, x)."""
    if not (0 <= y < pos.shape[1] and 0 <= x < pos.shape[2]):
        raise ValueError(f"point ({y}, {x}) is outside the {pos.shape[1]}×{pos.shape[2]} feature map")
    flat = F.normalize(pos.flatten(1), dim=0)  # (C, H·W) unit columns
    return (flat[:, y * pos.shape[2] + x] @ flat).reshape(pos.shape[1:])
