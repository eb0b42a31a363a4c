"""Per-head statistics of attention probabilities (numpy in, numpy out)."""

import numpy as np

STATISTICS = {
    "entropy": "entropy (bits): mean over queries of -Σ p log2 p; low = focused, log2(T) = uniform",
    "mean_distance": "mean attention distance: mean over queries of Σ_j p_ij |i - j|, in tokens",
    "cls_share": "share of attention on [CLS]",
    "sep_share": "share of attention on [SEP]",
    "max_weight": "max weight: mean over queries of the largest weight in the row",
}


def head_statistics(probs: np.ndarray, tokens: list[str], first: str = "[CLS]", last: str = "[SEP]") -> dict:
    """probs (..., T, T) rows summing to 1 -> {statistic: array of shape (...)} (e.g. (L, H))."""
    probs = np.asarray(probs, dtype=np.float64)
    t = probs.shape[-1]
    if probs.shape[-2] != t or len(tokens) != t:
        raise ValueError(f"expected (..., T, T) with T = {len(tokens)} tokens, got {probs.shape}")
    idx = np.arange(t)
    distance = np.abs(idx[:, None] - idx[None, :])
    plogp = np.where(probs > 0, probs * np.log2(np.where(probs > 0, probs, 1.0)), 0.0)
    is_first = np.array([tok == first for tok in tokens])
    is_last = np.array([tok == last for tok in tokens])
    return {
        "entropy": -plogp.sum(-1).mean(-1),
        "mean_distance": (probs * distance).sum(-1).mean(-1),
        "cls_share": probs[..., is_first].sum(-1).mean(-1),
        "sep_share": probs[..., is_last].sum(-1).mean(-1),
        "max_weight": probs.max(-1).mean(-1),
    }
