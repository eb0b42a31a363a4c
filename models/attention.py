"""The one multi-head attention of the project, instrumented.

Every model here (BERT, GPT, the encoder-decoder, DETR, the receptive-field lab) attends through
`MultiHeadAttention`. With `capture=False` it calls the fused
`torch.nn.functional.scaled_dot_product_attention`, which never builds the weights. With
`capture=True` it computes the same attention step by step in plain torch and returns an
`AttentionRecord` holding every intermediate, so that a page can show the real tensors. With
`capture=LAZY` it keeps the fused kernel and records only q, k, v and the mask: the weights of a head are
computed from them when a view asks (`AttentionRecord.weights`, `models.maps.AttentionMaps`), which is
what lets a page explore thousands of tokens without holding every (T, T) map.

Masks are boolean and broadcast to (B, nh, Tq, Tk): True means "may attend", False means
"masked" (the convention of `scaled_dot_product_attention`). The mask is applied after the
scaling by 1/sqrt(d_head) and before the softmax.
"""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAZY = "lazy"  # capture mode: keep q, k, v and the mask; compute the weights on demand
ZERO, MEAN = "zero", "mean"  # what a gated-off head is replaced by: nothing, or its mean over the queries


@dataclass
class AttentionRecord:
    """Everything one attention computed, per head. B batch, nh heads, Tq queries, Tk keys.

    The forward keeps q, k, v, the probabilities and the head outputs. The score stages are
    recomputed from q and k on demand, exactly as the forward computed them, so that capturing
    costs one (Tq, Tk) tensor per head (the probabilities) and not four. A LAZY capture keeps no
    probabilities at all (`probs` is None); `weights()` computes them.
    """

    q: Tensor  # (B, nh, Tq, dh) queries, after the projection and the head split
    k: Tensor  # (B, nh, Tk, dh)
    v: Tensor  # (B, nh, Tk, dh)
    scale: float  # 1 / sqrt(dh)
    mask: Tensor | None  # bool, broadcastable to (B, nh, Tq, Tk); True = may attend
    probs: Tensor | None  # (B, nh, Tq, Tk) softmax of the masked scaled scores; None if LAZY
    out: Tensor  # (B, nh, Tq, dh) per-head outputs A·V, before the heads are merged

    @property
    def scores(self) -> Tensor:
        """(B, nh, Tq, Tk) the raw scores QK^T."""
        return self.q @ self.k.transpose(-2, -1)

    @property
    def scaled(self) -> Tensor:
        """(B, nh, Tq, Tk) QK^T / sqrt(dh)."""
        return self.scores * self.scale

    @property
    def masked(self) -> Tensor:
        """(B, nh, Tq, Tk) the scaled scores with -inf where the mask forbids attending."""
        if self.mask is None:
            return self.scaled
        return self.scaled.masked_fill(~self.mask, float("-inf"))

    def weights(self) -> Tensor:
        """(B, nh, Tq, Tk) the attention probabilities: kept ones, or computed as the forward would."""
        return self.probs if self.probs is not None else self.masked.softmax(dim=-1)

    def detach(self) -> "AttentionRecord":
        return replace(self, **{k: v.detach() for k, v in vars(self).items() if isinstance(v, Tensor)})

    def item(self, index: int) -> "AttentionRecord":
        """The record of batch element `index`: every tensor loses its batch axis, (nh, Tq, Tk) etc."""
        mask = self.mask
        if mask is not None and mask.dim() == 4:
            mask = mask[index if mask.size(0) > 1 else 0]
        tensors = {k: v[index] for k, v in vars(self).items() if isinstance(v, Tensor) and k != "mask"}
        return replace(self, mask=mask, **tensors)


def causal_mask(t_q: int, t_k: int | None = None, device=None) -> Tensor:
    """(Tq, Tk) lower-triangular: query i may attend to keys j <= i (aligned at the end when Tk > Tq)."""
    t_k = t_q if t_k is None else t_k
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def local_mask(t: int, radius: int, device=None) -> Tensor:
    """(T, T) band: query i may attend to keys j with |i - j| <= radius (restricted self-attention)."""
    if radius < 0:
        raise ValueError(f"window radius must be >= 0, got {radius}")
    idx = torch.arange(t, device=device)
    return (idx[:, None] - idx[None, :]).abs() <= radius


def padding_mask(key_padding: Tensor) -> Tensor:
    """(B, Tk) True at padding -> (B, 1, 1, Tk) True where a key may be attended."""
    return ~key_padding.bool()[:, None, None, :]


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of the given boolean masks (broadcasting); None entries are ignored."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0].bool()
    for m in present[1:]:
        out = out & m.bool()
    return out


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, capture: bool | str = False):
    """Scaled dot-product attention over heads.

    q (B, nh, Tq, dh), k and v (B, nh, Tk, dh), mask bool broadcastable to (B, nh, Tq, Tk).
    capture: False (fused kernel, no record), True (every stage in plain torch) or LAZY (fused kernel,
    a record of q, k, v and the mask). Returns (out (B, nh, Tq, dh), AttentionRecord or None).
    """
    if not capture or capture == LAZY:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if not capture:
            return out, None
        scale = 1.0 / math.sqrt(q.size(-1))
        return out, AttentionRecord(q=q, k=k, v=v, scale=scale, mask=mask, probs=None, out=out)
    scale = 1.0 / math.sqrt(q.size(-1))
    scores = q @ k.transpose(-2, -1)  # (B, nh, Tq, Tk) QK^T
    scores.mul_(scale)  # in place: the stages are recomputed from q and k when asked for
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))  # after scaling, before the softmax
    probs = scores.softmax(dim=-1)
    out = probs @ v  # (B, nh, Tq, dh)
    return out, AttentionRecord(q=q, k=k, v=v, scale=scale, mask=mask, probs=probs, out=out)


def gate_heads(heads: Tensor, gate: Tensor, fill: str = ZERO) -> Tensor:
    """heads (B, nh, Tq, dh) per-head outputs; gate (nh,) or (B, nh) -> g·out + (1 − g)·fill per head.

    fill is 0 (ZERO: the head knocked out) or the head's output averaged over the Tq query positions of
    this forward (MEAN: the head kept as a constant). g = 1 gives the heads back exactly; gradients flow
    to the gate, and |∂L/∂g| at g = 1 with ZERO is Michel et al. (2019)'s head importance.
    """
    if fill not in (ZERO, MEAN):
        raise ValueError(f"unknown gate fill {fill!r}; use {ZERO!r} or {MEAN!r}")
    b, nh = heads.shape[:2]
    if gate.shape not in ((nh,), (b, nh)):
        raise ValueError(f"a head gate is ({nh},) or ({b}, {nh}) for {nh} heads and batch {b}, "
                         f"got {tuple(gate.shape)}")  # fmt: skip
    g = gate.to(heads.dtype).reshape(-1, nh, 1, 1)  # (B or 1, nh, 1, 1)
    if fill == ZERO:
        return heads * g
    return heads * g + (1 - g) * heads.mean(dim=2, keepdim=True)


def layer_gate(head_gates: Tensor | None, layer: int) -> Tensor | None:
    """One layer's gate, (H,) or (B, H), from a model's head_gates (L, H) or (L, B, H); None for none."""
    return None if head_gates is None else head_gates[layer]


GATED_FAMILIES = ("encoder", "decoder_self", "cross")  # models.readout's family names


def family_gates(head_gates: dict | None, family: str) -> Tensor | None:
    """The gates of one family of an encoder-decoder, {family: (L, H) or (L, B, H)} -> that family's, or
    None when it is not gated."""
    if head_gates is None:
        return None
    if not set(head_gates) <= set(GATED_FAMILIES):
        raise ValueError(f"head_gates are keyed by {GATED_FAMILIES}, got {sorted(head_gates)}")
    return head_gates.get(family)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q/k/v projections and an output projection.

    Query, key and value inputs are given separately, so that the same module serves
    self-attention (BERT, GPT), cross-attention (encoder-decoder, DETR decoder) and DETR's
    "position on Q and K only" (query = key = src + pos, value = src).
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)  # (B, nh, T, dh)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: Tensor | None = None,
        capture: bool | str = False,
        head_gate: Tensor | None = None,
        gate_fill: str = ZERO,
    ) -> tuple[Tensor, AttentionRecord | None]:
        """query (B, Tq, d); key, value (B, Tk, d), default to query. Returns ((B, Tq, d), record).

        head_gate (nh,) or (B, nh) scales each head's output before the heads are merged (`gate_heads`);
        the record keeps the heads as computed, before the gate."""
        key = query if key is None else key
        value = key if value is None else value
        q = self.split_heads(self.q_proj(query))
        k = self.split_heads(self.k_proj(key))
        v = self.split_heads(self.v_proj(value))
        heads, record = attend(q, k, v, mask=mask, capture=capture)
        if head_gate is not None:
            heads = gate_heads(heads, head_gate, gate_fill)
        b, _, t, _ = heads.shape
        merged = heads.transpose(1, 2).reshape(b, t, self.n_heads * self.d_head)  # (B, Tq, d)
        return self.out_proj(merged), record
