"""What RoPE does to a real model's queries and keys: pairs before and after, scores by offset, decay.

A Llama-family head rotates channel pair c = (c, c + r/2) of its first r channels by position × θ_c
(`models.rope`, θ_c = the model's inverse frequencies, scaling included). These functions take the
model's unrotated q and k (`models.llama.LlamaOutput.unrotated`) and its `inv_freq`, and rotate in
float64, so that what they show (a score that depends on the offset only) is not blurred by float32
angles at thousands of positions; `rotated_at` agrees with the model's own float32 rotation to rounding.
"""

import numpy as np
import torch
from torch import Tensor

from models import rope


def rotated_at(x: Tensor, positions: Tensor, inv_freq: Tensor) -> Tensor:
    """x (dh,) one head's query or key before RoPE, positions (N,) -> (N, dh) float64: x placed at each
    position and rotated there as the model rotates it (its first r = 2 len(inv_freq) channels)."""
    angles = positions.double()[:, None] * inv_freq.double()[None, :]  # (N, r/2)
    angles = torch.cat((angles, angles), dim=-1)  # (N, r): pair c is channels c and c + r/2
    return rope.rotate(x.double().expand(len(positions), -1), angles.cos(), angles.sin())


def pairs(x: Tensor, inv_freq: Tensor) -> Tensor:
    """(..., dh) -> (..., r/2, 2): channel pair c = (x[c], x[c + r/2]), the plane RoPE turns it in."""
    half = len(inv_freq)
    return torch.stack((x[..., :half], x[..., half : 2 * half]), dim=-1)


def pair_angles(position: int, inv_freq: Tensor) -> np.ndarray:
    """(r/2,) float64 radians: how far each pair is turned at `position` (position × θ_c)."""
    return position * inv_freq.double().numpy()


def scores_by_offset(q: Tensor, k: Tensor, inv_freq: Tensor, offsets: Tensor, starts: list[int]) -> Tensor:
    """(len(starts), len(offsets)) float64: q·k/√dh with the key at position s and the query at s + Δ,
    for each start s and offset Δ: the same two vectors moved along the sequence. RoPE makes each column
    one value whatever s is."""
    scale = q.shape[-1] ** -0.5
    rows = []
    for s in starts:
        qs = rotated_at(q, offsets + s, inv_freq)  # (D, dh)
        ks = rotated_at(k, torch.full_like(offsets, s), inv_freq)
        rows.append((qs * ks).sum(-1) * scale)
    return torch.stack(rows)


def decay_bound(inv_freq: Tensor, distances: np.ndarray) -> np.ndarray:
    """(D,) RoFormer's long-term decay (Su et al. 2021, §3.4.3): (1 / (r/2)) Σ_j |Σ_{c<j} e^{iΔθ_c}| at
    each distance Δ, the bound of |q·k| per unit of the largest step between neighbouring pairs' products.
    Computed from the model's own θ_c, so scaling (linear, llama3) and partial rotary show."""
    theta = inv_freq.double().numpy()
    phases = np.exp(1j * np.asarray(distances, dtype=np.float64)[:, None] * theta[None, :])  # (D, r/2)
    partial = np.cumsum(phases, axis=1)  # S_j = Σ_{c<=j} e^{iΔθ_c}
    return np.abs(partial).mean(axis=1)


def mean_by_distance(probs: np.ndarray) -> np.ndarray:
    """probs (T, T) causal weights -> (T,): at distance Δ, the mean over queries i ≥ Δ of probs[i, i - Δ]."""
    t = probs.shape[0]
    return np.array([probs.diagonal(-d).mean() for d in range(t)])
