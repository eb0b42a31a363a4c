"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"), on any readout.

A layer's attention says how each token's next representation mixes the previous ones, but the residual
connection carries the token itself through as well. Rollout models a layer as Â = ½(A + I), rows
renormalised (A the mean over heads, or another head reduction), and multiplies the layers:
R = Â_L ··· Â_1. Row i of R says how much of output token i can be traced back to each input token,
along every path through the layers at once. Rows sum to 1; a causal A stays lower-triangular, so a
decoder's rollout stays causal.

An encoder-decoder is rolled out over one joint graph whose nodes are the source tokens followed by the
decoder's input tokens (N = Ts + Tt), one (N, N) transition matrix per sublayer, applied in the order the
model computes them:

- encoder layer: the source block is ½(A_enc + I), the target block the identity (the decoder waits);
- decoder self-attention: the target block is ½(A_self + I), the source block the identity;
- cross-attention: target row i keeps ½ of itself (the residual) and takes ½ Σ_j C_ij from memory
  position j, the encoder's output at source token j: [[I, 0], [½ C, ½ I]] in (source, target) blocks.

The memory is the encoder's output, so rolled-out rows of the decoder reach the source tokens through the
encoder's rollout. This is the attention-only reading of Chefer et al. (2021, "Generic
Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder Transformers"), whose
update rules add Ā·R for self-attention and R_tt^T Ā R_ss for cross-attention; we keep Abnar &
Zuidema's ½-residual and row normalisation instead, so that every row is a distribution over the N input
tokens (the source and the decoder's own inputs) and the same graph serves attention flow
(`models.explain.flow`).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from models.maps import REDUCTIONS
from models.readout import Family

RESIDUAL = 0.5  # Abnar & Zuidema's weight of the identity: Â = ½(A + I)


def reduce_heads(weights: Tensor, head: int | str = "mean") -> Tensor:
    """weights (H, Tq, Tk) -> (Tq, Tk): one head, or the "mean" or "max" over heads."""
    if head == "mean":
        return weights.mean(0)
    if head == "max":
        return weights.amax(0)
    if isinstance(head, str):
        raise ValueError(f"head reduction {head!r} is not one of {REDUCTIONS} or a head index")
    return weights[head]


def layer_attention(family: Family, head: int | str = "mean") -> Tensor:
    """(L, Tq, Tk) float64: each layer's attention reduced over heads, from the family's q and k (one
    layer's H maps at a time)."""
    with torch.no_grad():
        maps = [family.weights(layer, slice(None)) for layer in range(family.n_layers)]  # (H, Tq, Tk) each
        return torch.stack([reduce_heads(m, head).double() for m in maps])


def with_residual(attention: Tensor, residual: float = RESIDUAL) -> Tensor:
    """(..., T, T) attention -> (1 - r)·A + r·I with rows renormalised to sum to 1."""
    t_q, t_k = attention.shape[-2:]
    if t_q != t_k:
        raise ValueError(f"the residual needs a square map (self-attention), got {t_q} x {t_k}")
    eye = torch.eye(t_q, dtype=attention.dtype, device=attention.device)
    mixed = (1 - residual) * attention + residual * eye
    return mixed / mixed.sum(-1, keepdim=True)


def rollout(transitions: Sequence[Tensor]) -> Tensor:
    """Transition matrices (N, N), the first applied first -> (N, N) their product M_K ··· M_1."""
    if not transitions:
        raise ValueError("rollout needs at least one layer")
    out = transitions[0]
    for matrix in transitions[1:]:
        out = matrix @ out
    return out


@dataclass
class LayerGraph:
    """The layered graph of rollout and flow: K transition matrices over the same N nodes (input tokens).

    Row i of transitions[k] is how node i after step k mixes the nodes before it (rows sum to 1); the
    nodes `outputs` are the output tokens, whose rolled-out rows a view shows.
    """

    transitions: list[Tensor]  # K tensors (N, N) float64, first applied first
    outputs: range  # the output tokens among the N nodes
    n_source: int = 0  # encoder-decoder: the first n_source nodes are the source tokens

    @property
    def n_nodes(self) -> int:
        return self.transitions[0].shape[0]

    def rollout(self) -> Tensor:
        """(n outputs, N): each output token's rolled-out row."""
        return rollout(self.transitions)[self.outputs.start : self.outputs.stop]


def layer_graph(
    families: dict[str, Family], head: int | str = "mean", residual: float = RESIDUAL
) -> LayerGraph:
    """The graph of an encoder ({"encoder"}), a decoder ({"decoder_self"}) or an encoder-decoder ({"encoder",
    "decoder_self", "cross"}), with each layer's heads reduced by `head`."""
    names = set(families)
    if names in ({"encoder"}, {"decoder_self"}):
        (family,) = families.values()
        steps = list(with_residual(layer_attention(family, head), residual))
        return LayerGraph(steps, range(steps[0].shape[0]))
    if names != {"encoder", "decoder_self", "cross"}:
        raise ValueError(
            f"rollout reads an encoder, a decoder or an encoder-decoder, got families {sorted(names)}"
        )
    encoder = with_residual(layer_attention(families["encoder"], head), residual)  # (Le, Ts, Ts)
    decoder = with_residual(layer_attention(families["decoder_self"], head), residual)  # (Ld, Tt, Tt)
    cross = layer_attention(families["cross"], head)  # (Ld, Tt, Ts)
    n_src, n_tgt = encoder.shape[-1], decoder.shape[-1]
    eye = torch.eye(n_src + n_tgt, dtype=torch.float64)
    src, tgt = slice(0, n_src), slice(n_src, n_src + n_tgt)
    steps = []
    for a in encoder:
        step = eye.clone()
        step[src, src] = a
        steps.append(step)
    for a, c in zip(decoder, cross, strict=True):
        step = eye.clone()
        step[tgt, tgt] = a
        steps.append(step)
        step = eye.clone()
        step[tgt, src] = (1 - residual) * c
        step[tgt, tgt] *= residual
        steps.append(step / step.sum(-1, keepdim=True))  # a fully masked cross row keeps its residual only
    return LayerGraph(steps, range(n_src, n_src + n_tgt), n_source=n_src)
