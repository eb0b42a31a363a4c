"""Previous-token and induction scores of causal attention heads, measured on repeated random tokens.

On a sequence r r (a random block of n tokens, then the same block again), an induction head at the
second copy's position i attends to the token *after* the first copy of token i, i.e. key i - n + 1:
having seen "... A B ... A", it looks at B to predict B. A previous-token head attends to key i - 1.
Both scores are mean attention weights, so they lie in [0, 1].
"""

import torch
from torch import Tensor


def previous_token_score(probs: Tensor) -> Tensor:
    """probs (..., T, T) -> (...): mean over queries i >= 1 of the weight on key i - 1."""
    if probs.shape[-1] != probs.shape[-2] or probs.shape[-1] < 2:
        raise ValueError(f"expected square attention (..., T, T) with T >= 2, got {tuple(probs.shape)}")
    return probs.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)


def induction_score(probs: Tensor, period: int) -> Tensor:
    """probs (..., T, T) on a sequence that repeats with `period` -> (...).

    Mean over the queries i >= period (the second copy) of the weight on key i - period + 1.
    """
    t = probs.shape[-1]
    if probs.shape[-2] != t or not 1 <= period < t:
        raise ValueError(
            f"expected square attention (..., T, T) and 1 <= period < T, got {tuple(probs.shape)}"
        )
    # key = query - (period - 1): the diagonal at offset -(period - 1), from query `period` on
    return probs.diagonal(offset=-(period - 1), dim1=-2, dim2=-1)[..., 1:].mean(-1)


def repeated_random_tokens(batch: int, period: int, low: int, high: int, seed: int = 0) -> Tensor:
    """(batch, 2 * period) long: random ids in [low, high), each row a block followed by the same block."""
    generator = torch.Generator().manual_seed(seed)
    block = torch.randint(low, high, (batch, period), generator=generator)
    return torch.cat([block, block], dim=1)


@torch.no_grad()
def measure_heads(model, ids: Tensor, period: int) -> dict[str, Tensor]:
    """Run a causal model (forward(ids, capture=True) -> .attentions) on repeated sequences.

    Returns {"previous_token": (L, H), "induction": (L, H)}, averaged over the batch.
    """
    records = model(ids, capture=True).attentions
    probs = torch.stack([r.probs.float().cpu() for r in records])  # (L, B, H, T, T)
    return {
        "previous_token": previous_token_score(probs).mean(1),
        "induction": induction_score(probs, period).mean(1),
    }


def induction_targets(ids: list[int]) -> list[int | None]:
    """For each query i, where an induction head would look: j + 1 for the latest j < i whose token and
    previous token equal those at i and i - 1 ("last time these two came, what followed?"); else None."""
    targets: list[int | None] = [None] * len(ids)
    last_seen: dict[tuple[int, int], int] = {}  # (previous token, token) -> latest position of the token
    for i in range(1, len(ids)):
        pair = (ids[i - 1], ids[i])
        if pair in last_seen:
            targets[i] = last_seen[pair] + 1
        last_seen[pair] = i
    return targets


def induction_share(probs: Tensor, targets: list[int | None]) -> Tensor:
    """probs (..., T, T) -> (...): mean weight on each query's induction target (NaN if no query has one)."""
    pairs = [(i, j) for i, j in enumerate(targets) if j is not None]
    if not pairs:
        return torch.full(probs.shape[:-2], float("nan"))
    rows, cols = zip(*pairs, strict=True)
    return probs[..., list(rows), list(cols)].mean(-1)


def period_targets(n: int, period: int) -> list[int | None]:
    """Induction targets of a sequence repeating with `period`: query i >= period looks at i - period + 1."""
    return [i - period + 1 if i >= period else None for i in range(n)]
