"""Where position enters a BERT, and what it does to its attention.

`input_parts` splits the embedding layer's input into its token, segment and position parts, the
position part taken both as a table lookup and as one-hot × table (S6). `run_variants` runs one
sentence with positions intact, removed and shuffled. Without its position embeddings a BERT
sees a bag of words: its self-attention is permutation equivariant, so shuffling the tokens only
permutes the attention. With them, the same words in another order get different attention.
"""

from dataclasses import dataclass

import numpy as np
import torch

from models.attention import LAZY
from models.maps import AttentionMaps
from models.positional import learned_by_lookup, learned_by_one_hot
from models.readout import readout

VARIANT_MEMO_BYTES = 16 * 2**20  # maps kept per run: 16 heads at 512 tokens


@dataclass
class Variant:
    """One run: tokens in the order the model saw them and every head's attention, computed on demand."""

    name: str
    tokens: list[str]
    order: np.ndarray  # (T,) index into the original tokens of the token at each position
    maps: AttentionMaps  # (T, T) per layer and head, in the order the model saw; rows sum to 1

    @property
    def nbytes(self) -> int:
        return self.maps.nbytes

    @property
    def inverse(self) -> np.ndarray:
        """(T,) the position at which the model saw original token i."""
        return np.argsort(self.order)

    def head(self, layer: int, head: int, original_order: bool = False) -> np.ndarray:
        """(T, T) one head's map (read-only), in the order the model saw, or re-indexed so that row and
        column i are original token i."""
        weights = self.maps.head(layer, head)
        return weights[np.ix_(self.inverse, self.inverse)] if original_order else weights

    @torch.no_grad()
    def layer_weights(self, layer: int, original_order: bool = False) -> torch.Tensor:
        """(H, T, T) every head of one layer, in the order the model saw or the original order."""
        weights = self.maps.family.weights(layer, slice(None))
        if not original_order:
            return weights
        inverse = torch.from_numpy(self.inverse).to(weights.device)
        return weights[:, inverse][:, :, inverse]

    def statistics(self) -> dict[str, np.ndarray]:
        """{statistic: (L, H)} per-head statistics (models.maps.STATISTICS), in the positions seen."""
        return self.maps.summary()["statistics"]


@torch.no_grad()
def input_parts(text_model, ids: list[int]) -> dict[str, torch.Tensor]:
    """(T, d) tensors: `token`, `segment`, `position` (lookup), `position_one_hot` (one-hot @ table),
    `sum` of the three, `normalised` = LayerNorm(sum) recomputed here, and `model` = the model's own
    embedding output, which `normalised` must equal."""
    embeddings = text_model.model.embeddings
    table = embeddings.position_embeddings.weight  # (N, d)
    input_ids = torch.tensor(ids, device=table.device)
    positions = torch.arange(len(ids), device=table.device)
    parts = {
        "token": embeddings.word_embeddings(input_ids),
        "segment": embeddings.token_type_embeddings(torch.zeros_like(input_ids)),
        "position": learned_by_lookup(table, positions),
        "position_one_hot": learned_by_one_hot(table, positions),
    }
    parts["sum"] = parts["token"] + parts["segment"] + parts["position"]
    parts["normalised"] = embeddings.layer_norm(parts["sum"])
    parts["model"] = text_model.run(ids, capture=False).hidden_states[0][0]
    return {k: v.float().cpu() for k, v in parts.items()}


def shuffled_order(n_tokens: int, seed: int = 0) -> np.ndarray:
    """(T,) a permutation that keeps the first and last token ([CLS], [SEP]) and moves the rest;
    never the identity when at least two tokens can move."""
    order = np.arange(n_tokens)
    inner = order[1:-1].copy()
    if inner.size >= 2:
        shuffled = np.random.default_rng(seed).permutation(inner)
        order[1:-1] = np.roll(inner, 1) if np.array_equal(shuffled, inner) else shuffled
    return order


@torch.no_grad()
def _maps(text_model, ids: list[int], use_positions: bool) -> AttentionMaps:
    """One forward on the fast path, q and k kept (LAZY): every head's map on demand."""
    out = text_model.run(ids, capture=LAZY, use_position_embeddings=use_positions)
    return AttentionMaps(readout(encoder=out.attentions)["encoder"], memo_bytes=VARIANT_MEMO_BYTES)


def run_variants(text_model, ids: list[int], tokens: list[str], seed: int = 0) -> dict[str, Variant]:
    """Attention of `ids` with positions, without them, shuffled with positions, and shuffled without them.

    `text_model` is a `models.bert.TextModel` (anything with `run(ids, capture, use_position_embeddings)`).
    """
    if len(ids) != len(tokens) or not ids:
        raise ValueError(
            f"need one token per id and at least one, got {len(ids)} ids and {len(tokens)} tokens"
        )
    identity = np.arange(len(ids))
    order = shuffled_order(len(ids), seed)
    shuffled_ids = [ids[i] for i in order]
    shuffled_tokens = [tokens[i] for i in order]
    return {
        "positions intact": Variant("positions intact", tokens, identity, _maps(text_model, ids, True)),
        "positions removed": Variant("positions removed", tokens, identity, _maps(text_model, ids, False)),
        "shuffled": Variant("shuffled", shuffled_tokens, order, _maps(text_model, shuffled_ids, True)),
        "shuffled, positions removed": Variant(
            "shuffled, positions removed", shuffled_tokens, order, _maps(text_model, shuffled_ids, False)
        ),
    }


def offset_share(probs: np.ndarray, offset: int) -> np.ndarray:
    """(..., T, T) -> (...) mean weight a query puts on the key `offset` positions away (-1: the previous
    one), over the queries that have such a key."""
    t = probs.shape[-1]
    if not -t < offset < t:
        raise ValueError(f"offset {offset} does not fit {t} tokens")
    return np.diagonal(probs, offset, axis1=-2, axis2=-1).mean(-1)


@torch.no_grad()
def permutation_gap(a: Variant, b: Variant) -> float:
    """Largest |difference| between two runs' attention, over every layer and head, once both are put back
    in the original token order: zero (to rounding) when the model cannot tell the two orders apart.
    One layer at a time, so that nothing holds every map at once."""
    return max(
        float((a.layer_weights(layer, True) - b.layer_weights(layer, True)).abs().max())
        for layer in range(a.maps.n_layers)
    )
