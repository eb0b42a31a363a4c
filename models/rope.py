"""Rotary position embeddings (RoPE) as Llama-family models compute them.

A head's query and key channels are taken in pairs (c, c + r/2) of the first r = rotary_dim channels and
each pair is rotated by the angle position × inv_freq[c]; the other d_head - r channels pass unchanged
(partial rotary). The score q_i · k_j then depends on the positions only through i - j. The inverse
frequencies follow `transformers.modeling_rope_utils` exactly (same formula, same float32 arithmetic),
including its `linear` and `llama3` scalings, so that a loaded checkpoint rotates as it was trained.
"""

import math

import torch
from torch import Tensor

ROPE_TYPES = ("default", "linear", "llama3")  # the `rope_type` values of rope_scaling this module computes
LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def rotary_dim(d_head: int, partial_rotary_factor: float = 1.0) -> int:
    """How many channels of a head are rotated (transformers: int(d_head * factor))."""
    dim = int(d_head * partial_rotary_factor)
    if dim < 2 or dim % 2:
        raise ValueError(
            f"partial_rotary_factor={partial_rotary_factor} rotates {dim} of {d_head} channels; "
            "it must rotate an even number, at least 2"
        )
    return dim


def inverse_frequencies(
    d_head: int, theta: float, partial_rotary_factor: float = 1.0, scaling: dict | None = None
) -> Tensor:
    """(rotary_dim / 2,) float32 angles per position of each channel pair.

    scaling: None or {"rope_type": "linear", "factor": f} (every frequency divided by f) or
    {"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
    "original_max_position_embeddings"} (long wavelengths divided by factor, short ones kept, a smooth
    blend between).
    """
    dim = rotary_dim(d_head, partial_rotary_factor)
    exponents = torch.arange(0, dim, 2, dtype=torch.int64, device="cpu").float() / dim
    inv_freq = 1.0 / (theta**exponents)
    kind = (scaling or {}).get("rope_type", "default")
    if kind == "default":
        return inv_freq
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        return _llama3(inv_freq, **{key: scaling[key] for key in LLAMA3_KEYS})
    raise ValueError(f"rope_type {kind!r} is not supported; use one of {ROPE_TYPES}")


def _llama3(
    inv_freq: Tensor,
    factor: float,
    low_freq_factor: float,
    high_freq_factor: float,
    original_max_position_embeddings: int,
) -> Tensor:
    """Llama 3.1's frequency scaling, as `transformers.modeling_rope_utils._compute_llama3_parameters`."""
    low_freq_wavelen = original_max_position_embeddings / low_freq_factor
    high_freq_wavelen = original_max_position_embeddings / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (original_max_position_embeddings / wavelen - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(medium, smoothed, scaled)


def cos_sin(inv_freq: Tensor, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """positions (T,) -> cos, sin (T, rotary_dim) in `dtype`, each angle written twice (pairs c, c + r/2)."""
    freqs = positions[:, None].float() * inv_freq.to(positions.device)[None, :]  # (T, r/2) in float32
    angles = torch.cat((freqs, freqs), dim=-1)  # (T, r)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x: Tensor) -> Tensor:
    """(..., r) -> (..., r): the pair (a, b) of channels (c, c + r/2) becomes (-b, a)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (B, h, T, dh), cos and sin (T, r) -> x with its first r channels rotated, the rest unchanged."""
    r = cos.shape[-1]
    if r == x.shape[-1]:
        return x * cos + rotate_half(x) * sin
    turned, kept = x[..., :r], x[..., r:]
    return torch.cat((turned * cos + rotate_half(turned) * sin, kept), dim=-1)
