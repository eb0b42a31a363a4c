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

from models.positional import learned_by_lookup, learned_by_one_hot


@dataclass
class Variant:
    """One run: tokens in the order the model saw them and the attention of every layer and head."""

    name: str
    tokens: list[str]
    order: np.ndarray  # (T,) index into the original tokens of the token at each position
    probs: np.ndarray  # (L, H, T, T) attention probabilities, rows (queries) summing to 1

    def in_original_order(self) -> np.ndarray:
        """(L, H, T, T) the attention re-indexed so that row/column i is original token i."""
        inverse = np.argsort(self.order)
        return self.probs[..., inverse, :][..., inverse]


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


def _probs(text_model, ids: list[int], use_positions: bool) -> np.ndarray:
    out = text_model.run(ids, capture=True, use_position_embeddings=use_positions)
    return torch.stack([r.probs[0] for r in out.attentions]).float().cpu().numpy()  # (L, H, T, T)


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
        "positions intact": Variant("positions intact", tokens, identity, _probs(text_model, ids, True)),
        "positions removed": Variant("positions removed", tokens, identity, _probs(text_model, ids, False)),
        "shuffled": Variant("shuffled", shuffled_tokens, order, _probs(text_model, shuffled_ids, True)),
        "shuffled, positions removed": Variant(
            "shuffled, positions removed", shuffled_tokens, order, _probs(text_model, shuffled_ids, False)
        ),
    }


def offset_share(probs: np.ndarray, offset: int) -> np.ndarray:
    """(..., T, T) -> (...) mean weight a query puts on the key `offset` positions away (-1: the previous
    one), over the queries that have such a key."""
    t = probs.shape[-1]
    if not -t < offset < t:
        raise ValueError(f"offset {offset} does not fit {t} tokens")
    return np.diagonal(probs, offset, axis1=-2, axis2=-1).mean(-1)


def permutation_gap(a: Variant, b: Variant) -> float:
    """Largest |difference| between two runs' attention once both are put back in the original token order:
    zero (to rounding) when the model cannot tell the two orders apart."""
    return float(np.abs(a.in_original_order() - b.in_original_order()).max())
