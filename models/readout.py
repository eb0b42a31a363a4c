"""One readout of a captured forward: every model's records stacked into named families.

A model returns one `AttentionRecord` per layer and per kind of attention. Pages want the same thing from
every model: for each kind, the queries, keys and values of every layer and head of one input, with the
mask. `readout` stacks the records of batch element `index` into a `Family` per kind, with one set of
names and shapes for every model:

- "encoder": self-attention of an encoder (BERT, the encoder–decoder's encoder, DETR's encoder);
- "decoder_self": a decoder's (masked) self-attention (GPT, the encoder–decoder, DETR's queries);
- "cross": a decoder's attention over the encoder's output (the encoder–decoder, DETR).
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from models.attention import AttentionRecord

FAMILIES = ("encoder", "decoder_self", "cross")


@dataclass
class Family:
    """Every layer of one kind of attention on one input. L layers, H heads, Tq queries, Tk keys."""

    name: str  # one of FAMILIES
    q: Tensor  # (L, H, Tq, dh) queries after the projection (and the rotation, where a model rotates)
    k: Tensor  # (L, H, Tk, dh)
    v: Tensor  # (L, H, Tk, dh)
    scale: float  # 1 / sqrt(dh)
    mask: Tensor | None  # bool, broadcastable to (L, H, Tq, Tk); True = may attend; None = all
    probs: Tensor | None  # (L, H, Tq, Tk) when the forward kept the weights, else None

    @property
    def n_layers(self) -> int:
        return self.q.shape[0]

    @property
    def n_heads(self) -> int:
        return self.q.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        """(Tq, Tk) of one map."""
        return self.q.shape[2], self.k.shape[2]

    def head_mask(self, layer: int, head: int | slice) -> Tensor | None:
        """(Tq, Tk) bool mask of one head ((h, Tq, Tk) for a slice of heads), or None when every key may
        be attended."""
        if self.mask is None:
            return None
        return self.mask.expand(self.n_layers, self.n_heads, *self.shape)[layer, head]

    def scores(
        self, layer: int, head: int | slice, queries: slice = slice(None), keys: slice = slice(None)
    ) -> Tensor:
        """(Tq, Tk) the scaled, masked scores of one head ((h, Tq, Tk) for a slice of heads), as the
        forward computed them; `queries` and `keys` take a block of them."""
        q, k = self.q[layer, head, ..., queries, :], self.k[layer, head, ..., keys, :]
        scores = q @ k.transpose(-2, -1)  # (Tq, Tk) QK^T
        scores.mul_(self.scale)
        mask = self.head_mask(layer, head)
        if mask is None:
            return scores
        mask = mask[..., queries, keys]
        if scores.requires_grad:  # out= has no gradient
            return scores.masked_fill_(~mask, float("-inf"))  # after scaling, before the softmax
        return torch.where(mask, scores, scores.new_tensor(float("-inf")), out=scores)  # no (Tq, Tk) ~mask

    def weights(self, layer: int, head: int | slice, queries: slice = slice(None)) -> Tensor:
        """(Tq, Tk) the attention probabilities of one head ((h, Tq, Tk) for a slice): kept ones, or
        computed from q and k; `queries` takes a block of rows."""
        if self.probs is not None:
            return self.probs[layer, head, ..., queries, :]
        scores = self.scores(layer, head, queries)
        if scores.requires_grad:
            return scores.softmax(dim=-1)
        return torch.softmax(scores, dim=-1, out=scores)  # in place: one (Tq, Tk) buffer, not two

    @property
    def nbytes(self) -> int:
        tensors = [self.q, self.k, self.v, self.mask, self.probs]
        return sum(t.element_size() * t.nelement() for t in tensors if t is not None)


def _mask_of(records: list[AttentionRecord], index: int) -> Tensor | None:
    """The records' masks for batch element `index`, broadcastable to (L, H, Tq, Tk)."""
    masks = [r.mask for r in records]
    if all(m is None for m in masks):
        return None
    shaped = []
    for m in masks:
        if m is None:
            m = torch.ones(1, 1, dtype=torch.bool, device=records[0].q.device)
        if m.dim() == 4:  # (B or 1, H or 1, Tq or 1, Tk)
            m = m[index if m.size(0) > 1 else 0]
        while m.dim() < 3:
            m = m.unsqueeze(0)
        shaped.append(m)  # (H or 1, Tq or 1, Tk or 1)
    if all(m is shaped[0] for m in shaped) or all(torch.equal(m, shaped[0]) for m in shaped):
        return shaped[0].unsqueeze(0)  # one mask for every layer: (1, H or 1, Tq or 1, Tk or 1)
    return torch.stack(torch.broadcast_tensors(*shaped))  # (L, H or 1, Tq or 1, Tk or 1)


def stack(name: str, records: list[AttentionRecord], index: int = 0) -> Family:
    """The records of one kind of attention (one per layer) -> the Family of batch element `index`."""
    if name not in FAMILIES:
        raise ValueError(f"unknown family {name!r}; use one of {FAMILIES}")
    if not records:
        raise ValueError(f"no {name} records: was the forward run with capture?")
    q = torch.stack([r.q[index] for r in records])  # (L, H, Tq, dh)
    kept = [r.probs for r in records]
    probs = torch.stack([p[index] for p in kept]) if all(p is not None for p in kept) else None
    return Family(
        name=name,
        q=q,
        k=torch.stack([r.k[index] for r in records]),
        v=torch.stack([r.v[index] for r in records]),
        scale=records[0].scale,
        mask=_mask_of(records, index),
        probs=probs,
    )


def readout(index: int = 0, **records: list[AttentionRecord] | None) -> dict[str, Family]:
    """readout(encoder=records, cross=records, ...) -> {family name: Family}; None entries are skipped."""
    return {name: stack(name, recs, index) for name, recs in records.items() if recs}
