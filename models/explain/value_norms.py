"""Attention weighted by the size of what it moves (Kobayashi et al. 2020, "Attention is not only a weight").

A head's output at query i is Σ_j α_ij f(x_j), where f(x_j) = (x_j W_V + b_V) W_O is key j's value vector
carried through the head's slice of the output projection: the vector that token j actually adds to token
i's residual stream, per unit of weight. A large weight on a key whose f(x_j) is tiny moves almost
nothing (BERT's heavy attention on [CLS] and [SEP] is mostly of this kind), so Kobayashi et al. read
‖α_ij f(x_j)‖ = α_ij ‖f(x_j)‖ instead of α_ij, per head, and ‖Σ_h α^h_ij f^h(x_j)‖ for the whole layer.

The attention sublayer's output decomposes exactly into these terms:

    out_i = Σ_j Σ_h α^h_ij f^h(x_j) + b_O

(W_O applied to the concatenated heads is the sum of each head through its own rows of W_O), which
`ValueNorms.reconstruct` computes and the tests check against the module's output.

Everything is read from a captured forward: α from the family's q and k, the values v (after their bias)
from the record, and W_O, b_O from the layer's output projection: `MultiHeadAttention.out_proj`, or
`o_proj` of a Llama-family `GroupedQueryAttention`, whose record holds each query head's shared K/V head's
values, so that f^h uses the values head h attends over.
"""

import numpy as np
import torch
from torch import Tensor, nn

from models.attention import MultiHeadAttention
from models.llama import GroupedQueryAttention
from models.readout import Family

Attention = MultiHeadAttention | GroupedQueryAttention
BLOCK_BYTES = 2**26  # the float64 weights of every head for one block of queries in `ValueNorms.summed`


def output_projection(module: Attention) -> nn.Linear:
    """The layer's W_O and b_O: our MultiHeadAttention's `out_proj`, a GroupedQueryAttention's `o_proj`."""
    return module.out_proj if isinstance(module, MultiHeadAttention) else module.o_proj


def head_projections(module: Attention) -> Tensor:
    """(H, dh, d): W_O^h, the rows of the output projection that head h's output goes through."""
    weight = output_projection(module).weight  # (d, H*dh), nn.Linear computes merged @ weight.T
    return weight.T.reshape(-1, module.d_head, weight.shape[0])


def transformed_values(v: Tensor, module: Attention) -> Tensor:
    """v (H, Tk, dh) per-head values (bias included) -> f (H, Tk, d), f^h(x_j) = v^h_j W_O^h."""
    return v @ head_projections(module).to(v.dtype)


def value_grams(f: Tensor) -> Tensor:
    """f (H, Tk, d) -> (Tk, H, H): each key's Gram matrix of its head vectors, in float64."""
    f = f.double()
    return torch.einsum("hjd,gjd->jhg", f, f)


def summed_norms(weights: Tensor, f: Tensor, grams: Tensor | None = None) -> Tensor:
    """weights (H, Tq, Tk), f (H, Tk, d) -> (Tq, Tk) ‖Σ_h α^h_ij f^h(x_j)‖, in float64.

    Through each key's (H, H) Gram matrix of its head vectors, ‖Σ_h a_h f^h‖² = aᵀ G_j a, so that no
    (Tq, Tk, d) tensor is built. `grams`: `value_grams(f)` when the caller has them already."""
    grams = value_grams(f) if grams is None else grams
    a = weights.double()
    squared = torch.einsum("hij,jhg,gij->ij", a, grams, a)
    return squared.clamp_min(0).sqrt()


class ValueNorms:
    """Value-weighted attention of one family on one input, one layer at a time, on demand.

    family: the readout family (q, k, v of every layer); modules: the family's attention module per layer
    (for W_O and b_O). Results are float32 numpy arrays. Each layer's f is computed once per instance: a
    view reads it for the lengths, one head's map and the layer's sum.
    """

    def __init__(self, family: Family, modules: list[Attention]):
        if len(modules) != family.n_layers:
            raise ValueError(
                f"{family.name} has {family.n_layers} layers but {len(modules)} attention modules"
            )
        self.family, self.modules = family, modules
        self.n_layers, self.n_heads = family.n_layers, family.n_heads
        self._values: dict[int, Tensor] = {}

    @torch.no_grad()
    def values(self, layer: int) -> Tensor:
        """(H, Tk, d) f^h(x_j) of every head and key of `layer`."""
        if layer not in self._values:
            self._values[layer] = transformed_values(self.family.v[layer].float(), self.modules[layer])
        return self._values[layer]

    @torch.no_grad()
    def norms(self, layer: int) -> np.ndarray:
        """(H, Tk) ‖f^h(x_j)‖."""
        return self.values(layer).norm(dim=-1).cpu().numpy()

    @torch.no_grad()
    def weighted(self, layer: int, head: int | None = None, alpha: np.ndarray | None = None) -> np.ndarray:
        """(Tq, Tk) ‖α^h_ij f^h(x_j)‖ of one head, or (H, Tq, Tk) for every head when head is None. `alpha`:
        those weights (float32) when the caller has them already."""
        heads = slice(None) if head is None else head
        if alpha is None:
            alpha = self.family.weights(layer, heads).float().cpu().numpy()
        return alpha * self.norms(layer)[heads][..., None, :]  # ‖f‖ (Tk,) or (H, Tk) scales each key

    @torch.no_grad()
    def summed(self, layer: int) -> np.ndarray:
        """(Tq, Tk) ‖Σ_h α^h_ij f^h(x_j)‖: what key j adds to query i through the whole layer."""
        values = self.values(layer)
        grams = value_grams(values)
        n_queries, n_keys = self.family.shape
        rows = max(1, BLOCK_BYTES // (8 * self.n_heads * n_keys))  # a block of queries at a time
        blocks = [
            summed_norms(self.family.weights(layer, slice(None), slice(start, start + rows)), values, grams)
            for start in range(0, n_queries, rows)
        ]
        return torch.cat(blocks).float().cpu().numpy()

    @torch.no_grad()
    def reconstruct(self, layer: int) -> Tensor:
        """(Tq, d) Σ_j Σ_h α^h_ij f^h(x_j) + b_O: the attention sublayer's output rebuilt from its terms."""
        alpha = self.family.weights(layer, slice(None)).double()  # (H, Tq, Tk)
        out = torch.einsum("hij,hjd->id", alpha, self.values(layer).double())
        bias = output_projection(self.modules[layer]).bias
        return out if bias is None else out + bias.double()
