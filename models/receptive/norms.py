"""Layer norm against batch norm on real activations, and what the residual connection prevents.

Activations are (B, T, d): B sentences, T token positions, d channels, with a (B, T) mask of real
tokens. Layer norm averages over the d channels of each token on its own; batch norm averages over
all the real tokens of the batch (B and T) for each channel on its own. Padding never enters a
statistic.

The residual experiment stacks attention blocks at random initialisation, with the skip connection
(x + MHA(LN(x))) and without it (MHA(LN(x))), and follows the token vectors layer by layer: pure
attention mixes tokens into their mean, so without the skip the tokens collapse to one vector
(Dong, Cordonnier and Loukas, 2021).
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.attention import MultiHeadAttention
from models.receptive.threads import one_cpu_thread

MAX_RESIDUAL_DEPTH = 64


def sentence_batch(model, sentences) -> tuple[Tensor, Tensor, list[str]]:
    """The sentences as one padded batch for a models.bert.TextModel: ids (B, T) padded with 0, the
    (B, T) mask of real tokens (1) and a "sentence:token" label per real token, in order."""
    encodings = [model.encode(s) for s in sentences]
    longest = max(len(e.ids) for e in encodings)
    ids = torch.zeros(len(encodings), longest, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = []
    for i, e in enumerate(encodings):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1
        labels += [f"{i}:{token}" for token in e.tokens]
    return ids, mask, labels


def layer_norm(h: Tensor, eps: float = 1e-5) -> Tensor:
    """(B, T, d) normalised over d for each token: the statistics of one sample alone."""
    return F.layer_norm(h, h.shape[-1:], eps=eps)


def batch_norm(h: Tensor, mask: Tensor, eps: float = 1e-5) -> Tensor:
    """(B, T, d) normalised over the real tokens of the batch for each channel; padding stays 0."""
    keep = mask.bool()
    real = h[keep]  # (N, d): every real token of every sentence
    mean, var = real.mean(0), real.var(0, unbiased=False)
    return ((h - mean) / torch.sqrt(var + eps)) * keep[..., None]


@dataclass
class AxisStats:
    """Mean and standard deviation along each axis of a (B, T, d) activation, over real tokens only."""

    token_mean: np.ndarray  # (N,) per real token, over its d channels (what layer norm fixes)
    token_std: np.ndarray  # (N,)
    channel_mean: np.ndarray  # (d,) per channel, over the N real tokens of the batch (what batch norm fixes)
    channel_std: np.ndarray  # (d,)


def axis_stats(h: Tensor, mask: Tensor) -> AxisStats:
    real = h[mask.bool()].double()  # (N, d)
    return AxisStats(
        token_mean=real.mean(1).numpy(),
        token_std=real.std(1, unbiased=False).numpy(),
        channel_mean=real.mean(0).numpy(),
        channel_std=real.std(0, unbiased=False).numpy(),
    )


class AttentionBlock(nn.Module):
    """Pre-norm self-attention, with or without the skip connection around it."""

    def __init__(self, d_model: int, n_heads: int, skip: bool):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.skip = skip

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.attn(self.norm(x))
        return x + out if self.skip else out


@dataclass
class StackTrace:
    """Per layer 0..L (layer 0 is the input) of a deep attention stack."""

    cosine: np.ndarray  # (L+1,) mean cosine similarity between different token vectors
    rank_residual: np.ndarray  # (L+1,) ||X - 1 mean(X)|| / ||X||: 0 when all tokens are one vector
    effective_rank: np.ndarray  # (L+1,) exp(entropy of the normalised singular values)
    grad_norm: np.ndarray  # (L+1,) ||dLoss/dX_l||, loss = <output, fixed random direction>


def _effective_rank(x: Tensor) -> float:
    s = torch.linalg.svdvals(x)
    p = s / s.sum()
    return float(torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum()))


@one_cpu_thread
def residual_trace(x: Tensor, n_layers: int, n_heads: int, skip: bool, seed: int = 0) -> StackTrace:
    """Run x (T, d) through n_layers random attention blocks and measure the token vectors per layer."""
    if not 1 <= n_layers <= MAX_RESIDUAL_DEPTH:
        raise ValueError(f"residual stack depth {n_layers} is outside the limit [1, {MAX_RESIDUAL_DEPTH}]")
    t, d = x.shape
    if t < 2:
        raise ValueError("the residual panel needs at least 2 tokens to compare")
    torch.manual_seed(seed)
    blocks = [AttentionBlock(d, n_heads, skip) for _ in range(n_layers)]
    h = x.detach().float()[None].requires_grad_(True)  # (1, T, d)
    states = [h]
    for block in blocks:
        states.append(block(states[-1]))
    for s in states:
        s.retain_grad()
    direction = torch.randn(
        states[-1].shape, generator=torch.Generator().manual_seed(seed), dtype=torch.double
    )
    (states[-1] * direction).sum().backward()

    cosine, residual, eff_rank, grads = [], [], [], []
    off_diagonal = ~torch.eye(t, dtype=torch.bool)
    for s in states:
        v = s.detach()[0]  # (T, d)
        unit = F.normalize(v, dim=-1)
        cosine.append(float((unit @ unit.T)[off_diagonal].mean()))
        residual.append(float((v - v.mean(0)).norm() / v.norm().clamp_min(1e-30)))
        eff_rank.append(_effective_rank(v))
        grads.append(float(s.grad.norm()))
    return StackTrace(np.array(cosine), np.array(residual), np.array(eff_rank), np.array(grads))
