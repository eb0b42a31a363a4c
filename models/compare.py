"""Two attentions side by side: alignment of their tokens, the difference of one head's maps, and a
per-head distance over the whole model (Jensen–Shannon between rows, averaged).

Both sides are `Family` objects (models/readout.py), so any two inputs or models compare the same way:
two texts through one encoder, an encoder against its untrained copy, two DETR checkpoints on one image.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from models.bert import BertModel, TextModel
from models.readout import Family


@dataclass(frozen=True)
class Alignment:
    """How two inputs' positions are matched: the first `n` of each."""

    n: int  # positions compared on each side
    by_tokens: bool  # True when both tokenisations agree (same tokens); else matched by position only
    n_a: int
    n_b: int

    @property
    def notice(self) -> str | None:
        if self.by_tokens:
            return None
        cut = f"; the first {self.n} of each are compared" if self.n_a != self.n_b else ""
        return (
            f"The tokenisations differ ({self.n_a} and {self.n_b} tokens): positions are matched by index, "
            f"not by token{cut}, and each row is renormalised over the keys kept."
        )


def align(tokens_a: list[str], tokens_b: list[str]) -> Alignment:
    n_a, n_b = len(tokens_a), len(tokens_b)
    return Alignment(min(n_a, n_b), list(tokens_a) == list(tokens_b), n_a, n_b)


def restrict(weights: torch.Tensor, n: int) -> torch.Tensor:
    """(..., T, T) -> (..., n, n): the first n queries and keys, rows renormalised when keys were cut (a row
    whose kept keys have no weight stays 0)."""
    if weights.shape[-1] == n and weights.shape[-2] == n:
        return weights
    cut = weights[..., :n, :n]
    total = cut.sum(-1, keepdim=True)
    return torch.where(total > 0, cut / total.clamp_min(torch.finfo(cut.dtype).tiny), cut)


def js_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence in bits (0 to 1) between matching rows of p and q (..., T, T) -> (..., T).
    Identical rows give exactly 0: m is then p itself, and every log ratio is log 1."""
    p, q = p.double(), q.double()
    m = (p + q) / 2

    def kl(a: torch.Tensor) -> torch.Tensor:
        ratio = torch.where(a > 0, a / torch.where(m > 0, m, 1.0), 1.0)
        return (a * torch.log2(ratio)).sum(-1)

    return (kl(p) + kl(q)) / 2


def head_distances(a: Family, b: Family, alignment: Alignment) -> np.ndarray:
    """(L, H) the mean over query rows of the Jensen–Shannon divergence between side a's and side b's
    maps, over the layers and heads both have; one layer of each at a time."""
    n_layers, n_heads = min(a.n_layers, b.n_layers), min(a.n_heads, b.n_heads)
    out = np.zeros((n_layers, n_heads))
    with torch.no_grad():
        for layer in range(n_layers):
            wa = restrict(a.weights(layer, slice(0, n_heads)).float().cpu(), alignment.n)  # (H, n, n)
            wb = restrict(b.weights(layer, slice(0, n_heads)).float().cpu(), alignment.n)
            out[layer] = js_rows(wa, wb).mean(-1).numpy()
    return out


def head_pair(a: Family, b: Family, layer: int, head, alignment: Alignment) -> tuple[np.ndarray, np.ndarray]:
    """One head's (n, n) maps of both sides (head an int, or "mean" / "max" over heads), aligned."""
    with torch.no_grad():
        maps = []
        for family in (a, b):
            if head in ("mean", "max"):
                w = family.weights(layer, slice(None)).float()
                w = w.mean(0) if head == "mean" else w.amax(0)
            else:
                w = family.weights(layer, head).float()
            maps.append(restrict(w.cpu(), alignment.n).numpy())
    return maps[0], maps[1]


def untrained_copy(model: TextModel, seed: int = 0) -> TextModel:
    """The same architecture and tokenizer with PyTorch's initial weights (seeded): what training changed
    shows against it."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        fresh = BertModel(model.config).to(model.device).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    return dataclasses.replace(model, model=fresh, name=f"{model.name} (untrained, seed {seed})")
