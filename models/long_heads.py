"""What each head of a causal model does at long length, read one map at a time from a LAZY capture.

- sink: the share of attention on the first token (<s>), averaged over queries: the "attention sink";
- previous-token score: mean weight on key i - 1 (`models.head_scores.previous_token_score`);
- induction at long distance: on <s> followed by a random block and its copy `period` tokens later, mean
  weight of each query of the copy on the token after its first occurrence
  (`models.head_scores.induction_score`).

Each map is computed from q and k when read (`models.maps.AttentionMaps`), so that 4,096 tokens never
hold layers x heads x T x T weights.
"""

import numpy as np
import torch
from torch import Tensor

from models.attention import LAZY
from models.head_scores import induction_score, previous_token_score
from models.maps import AttentionMaps
from models.readout import readout

SCORES = {
    "sink": "share of attention on the first token (<s>), mean over queries",
    "previous_token": "mean weight on the previous token",
    "induction": "mean weight on the token after the first copy, on a random block repeated far later",
}


@torch.no_grad()
def llama_maps(model, ids: list[int]) -> AttentionMaps:
    """Every head's map on `ids` from one LAZY forward of a `models.llama.Llama` (q, k and v kept; no
    logits, which no map needs); each map is computed when read."""
    ids = torch.tensor([ids], device=next(model.parameters()).device)
    records = model(ids, capture=LAZY, unrotated=False, logits=False).attentions
    return AttentionMaps(readout(decoder_self=records)["decoder_self"])


def repeated_block(length: int, low: int, high: int, bos: int, seed: int = 0) -> tuple[Tensor, int]:
    """((length,) long, period): `bos`, then random ids in [low, high) forming a block and its copy; the
    copy starts `period` = length // 2 tokens after the block."""
    period = length // 2
    if period < 2:
        raise ValueError(f"a repeated block needs length >= 4, got {length}")
    block = torch.randint(low, high, (period,), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.tensor([bos]), block, block])[:length], period


@torch.no_grad()
def long_head_scores(on_text: AttentionMaps, on_probe: AttentionMaps, period: int) -> dict[str, np.ndarray]:
    """{score: (L, H)} of SCORES: the sink and previous-token scores read on `on_text` (an input that
    starts with <s>), the induction score on `on_probe` (the maps of `repeated_block`'s ids).

    Each head's map is computed from q and k, read for its three numbers and dropped: not converted, not
    memoised (so that measuring every head leaves the maps a view memoised in place)."""
    shape = (on_text.n_layers, on_text.n_heads)
    scores = {name: np.zeros(shape) for name in SCORES}
    for layer in range(shape[0]):
        for head in range(shape[1]):
            w = on_text.family.weights(layer, head)  # (T, T)
            scores["sink"][layer, head] = float(w[:, 0].double().mean())
            scores["previous_token"][layer, head] = float(previous_token_score(w))
            w = on_probe.family.weights(layer, head)[1:, 1:]  # the repeated part, after <s>
            scores["induction"][layer, head] = float(induction_score(w, period))
    return scores
